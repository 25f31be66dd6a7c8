//! Keeps the ABI's identity where plugins built before this crate existed expect it.
//!
//! abi_stable records, in the layout of every `StableAbi` type, the package that declared it
//! (`env!("CARGO_PKG_NAME")` where the derive expands), and its layout check refuses a library
//! whose types were declared by a package of another name. These types were declared by
//! `plugin-api` until they moved into this crate, and every plugin built until then carries
//! `plugin-api` in its layouts; so this crate compiles with that package name.
//! `tests::layouts_are_declared_by_plugin_api` pins it.

fn main() {
    println!("cargo::rustc-env=CARGO_PKG_NAME=plugin-api");
    println!("cargo::rerun-if-changed=build.rs");
}
