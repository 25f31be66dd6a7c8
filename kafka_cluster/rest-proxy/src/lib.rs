//! rest-proxy
