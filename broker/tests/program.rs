//! The `mqstore-broker` program: starts from its config file, serves, and on SIGTERM closes its
//! store cleanly; a bad config file is refused with the key named.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use mqstore_broker::codes::{request, response};
use mqstore_broker::remoting::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn call(stream: &mut TcpStream, cmd: Command) -> Command {
    stream.write_all(&cmd.encode()).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).unwrap();
    Command::decode(&frame).unwrap()
}

#[test]
fn serves_from_its_config_file_and_closes_the_store_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("broker.toml");
    let store = dir.path().join("store");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[store]\ndir = \"{}\"\n[store.flush]\nmode = \"sync\"\n",
            store.display()
        ),
    )
    .unwrap();
    let mut child = Process::new(env!("CARGO_BIN_EXE_mqstore-broker"))
        .args(["--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the broker never listened: {e}"),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let send = Command::request(request::SEND_MESSAGE, 1)
        .with("producerGroup", "PG")
        .with("topic", "T")
        .with("queueId", 0)
        .with("properties", "TAGS\u{1}a\u{2}")
        .with_body(b"durable".to_vec());
    assert_eq!(call(&mut stream, send).code, response::SUCCESS);

    let killed = Process::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "exit {status}: {stderr}");

    let reopened = mqstore::MessageStore::open(mqstore::StoreConfig::new(&store)).unwrap();
    assert!(
        reopened.recovery_report().clean_shutdown,
        "SIGTERM closed the store: {stderr}"
    );
    let got = reopened.get("T", 0, 0, 8).unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].body(), b"durable");
    reopened.close().unwrap();
}

#[test]
fn a_bad_config_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:1\"\nqueues = 4\n[store]\ndir = \"/tmp/x\"\n",
    )
    .unwrap();
    let out = Process::new(env!("CARGO_BIN_EXE_mqstore-broker"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("queues"), "{stderr}");
    let out = Process::new(env!("CARGO_BIN_EXE_mqstore-broker")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no arguments: usage");
}
