//! The workspace's Schema Registry run by one test on a port of its own, so stopping it, or
//! requiring credentials, does not disturb the shared local cluster.

use crate::{build_dir, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `schema-registry` process serving `dir` on `port`.
pub struct PrivateRegistry {
    child: Child,
    port: u16,
    dir: PathBuf,
    basic_auth: Option<String>,
}

impl PrivateRegistry {
    /// Starts a registry open to everyone.
    pub fn start(port: u16, dir: &Path) -> PrivateRegistry {
        Self::start_with_auth(port, dir, None)
    }

    /// Starts a registry that requires `basic_auth` (`user:password`) when it is given.
    pub fn start_with_auth(port: u16, dir: &Path, basic_auth: Option<&str>) -> PrivateRegistry {
        let mut command = Command::new(build_dir().join("schema-registry"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(credentials) = basic_auth {
            command.args(["--basic-auth", credentials]);
        }
        let child = command.spawn().expect("schema-registry starts");
        wait_for_port(port, Duration::from_secs(30), "the schema registry");
        PrivateRegistry {
            child,
            port,
            dir: dir.to_path_buf(),
            basic_auth: basic_auth.map(str::to_string),
        }
    }

    /// The URL, without credentials (as `stage-host` takes it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL with the credentials in it, as confluent-kafka's client takes them.
    pub fn url_with_credentials(&self) -> String {
        match &self.basic_auth {
            Some(credentials) => format!("http://{credentials}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }

    /// Stops the registry; returns its port and data directory, to start it again there.
    pub fn stop(mut self) -> (u16, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir.clone())
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
