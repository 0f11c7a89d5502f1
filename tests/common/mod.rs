//! Running the real `trigger-doctor serve` binary from integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The service's process, killed when the test ends however it ends.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Service {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `trigger-doctor serve` on a free port with `env` (`TRIGGER_DOCTOR__` is prefixed to
/// each name) and JSON logs at level `info` or lower (its port is read from the "listening"
/// line); returns the process, its port and its collected log lines.
pub fn spawn(env: &[(&str, String)]) -> (Service, u16, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trigger-doctor"));
    command
        .arg("serve")
        .env("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0")
        .env("TRIGGER_DOCTOR__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(format!("TRIGGER_DOCTOR__{name}"), value);
    }
    // Owned at once, so a failed start below still kills the process.
    let mut child = Service(command.spawn().expect("the binary starts"));
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line.clone());
            if !sent {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "listening" {
                        let _ = tx.send(v["port"].as_u64().unwrap() as u16);
                        sent = true;
                    }
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the service reports its port");
    (child, port, log)
}
