//! `filegate serve` as a child process (the real binary): started with a config file and
//! extra environment, its stderr read until the listeners it waits for have logged their
//! bound addresses (`… <protocol> listening on <addr>`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `filegate --config <config> serve` with `env` and waits (60 s at most) until
/// `listeners` front-ends have said where they listen; the child and their addresses by
/// protocol name. Panics naming `what` if it does not start.
pub fn spawn_serve(
    config: &Path,
    env: &[(&str, &str)],
    listeners: usize,
    what: &str,
) -> (Child, HashMap<String, SocketAddr>) {
    super::crypto();
    let mut child = Command::new(env!("CARGO_BIN_EXE_filegate"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("FILEGATE_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((before, after)) = line.split_once(" listening on ") {
                let protocol = before.rsplit(' ').next().unwrap_or("").to_owned();
                let addr = after.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send((protocol, addr));
            }
        }
    });
    let mut addrs = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while addrs.len() < listeners {
        let left = deadline.saturating_duration_since(Instant::now());
        let (protocol, addr) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{what} did not start"));
        addrs.insert(protocol, addr.parse().unwrap());
    }
    (child, addrs)
}
