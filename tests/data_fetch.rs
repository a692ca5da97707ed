//! `data fetch` against a small HTTP server on 127.0.0.1 (no other network):
//! streamed download, MD5 checked, a mismatch deleted, mirrors by flag and
//! by environment variable.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves `body` at `/cifar-10-python.tar.gz` (404 elsewhere) for at most
/// `max` requests or 30 seconds, whichever comes first; counts requests.
fn serve(body: Vec<u8>, max: usize) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut served = 0;
        while served < max && Instant::now() < deadline {
            let Ok((s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            served += 1;
            h.fetch_add(1, Ordering::SeqCst);
            s.set_nonblocking(false).ok();
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Skip the request headers.
            loop {
                let mut hdr = String::new();
                if r.read_line(&mut hdr).map(|n| n == 0).unwrap_or(true) || hdr == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut w = s;
            if path == "/cifar-10-python.tar.gz" || path == "/mirror/cifar-10-python.tar.gz" {
                let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n", body.len());
                let _ = w.write_all(&body);
            } else {
                let _ = write!(
                    w,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
            let _ = w.flush();
        }
    });
    (addr, hits)
}

fn fetch(args: &[&str], env_url: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ddgsd-bench"));
    c.args(["data", "fetch"])
        .args(args)
        .env_remove("DDGSD_CIFAR_URL");
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(v);
    }
    if let Some(u) = env_url {
        c.env("DDGSD_CIFAR_URL", u);
    }
    c.output().unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn body() -> (Vec<u8>, String) {
    // Any bytes will do: fetch checks the MD5, not the contents.
    let b: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&b));
    (b, md5)
}

#[test]
fn downloads_verifies_and_renames_into_place() {
    let (b, md5) = body();
    let (addr, hits) = serve(b.clone(), 4);
    let t = tempfile::tempdir().unwrap();
    let to = t.path().join("data");
    let url = format!("{addr}/cifar-10-python.tar.gz");
    let o = fetch(
        &[
            "cifar10",
            "--to",
            to.to_str().unwrap(),
            "--url",
            &url,
            "--md5",
            &md5,
        ],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
    let target = to.join("cifar-10-python.tar.gz");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        target.to_str().unwrap()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b);
    assert_eq!(files_in(&to), vec!["cifar-10-python.tar.gz"]);
    assert!(
        err(&o).contains("MiB"),
        "progress expected on stderr: {}",
        err(&o)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Already there with the right MD5: no second download.
    let o = fetch(
        &[
            "cifar10",
            "--to",
            to.to_str().unwrap(),
            "--url",
            &url,
            "--md5",
            &md5,
        ],
        None,
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("already here"), "{}", err(&o));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A mirror given as a base address in the environment.
    let to2 = t.path().join("data2");
    let o = fetch(
        &["cifar10", "--to", to2.to_str().unwrap(), "--md5", &md5],
        Some(&format!("{addr}/mirror/")),
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::read(to2.join("cifar-10-python.tar.gz")).unwrap(),
        b
    );
}

#[test]
fn a_wrong_md5_is_refused_and_nothing_is_left() {
    let (b, md5) = body();
    let (addr, _) = serve(b, 2);
    let t = tempfile::tempdir().unwrap();
    let to = t.path().join("d");
    let url = format!("{addr}/cifar-10-python.tar.gz");
    // Without --md5 the published MD5 of the real archive is expected.
    let o = fetch(
        &["cifar10", "--to", to.to_str().unwrap(), "--url", &url],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "downloaded file has MD5 {md5}, expected c58f30108f718f92721af3b95e74349a"
        )),
        "{e}"
    );
    assert!(e.contains("deleted"), "{e}");
    assert!(files_in(&to).is_empty(), "{:?}", files_in(&to));

    // A missing file on the server.
    let o = fetch(
        &[
            "cifar100",
            "--to",
            to.to_str().unwrap(),
            "--url",
            &format!("{addr}/nothing-here"),
            "--md5",
            &md5,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("download failed"), "{}", err(&o));
    assert!(files_in(&to).is_empty());

    // A malformed --md5.
    let o = fetch(
        &[
            "cifar10",
            "--to",
            to.to_str().unwrap(),
            "--url",
            &url,
            "--md5",
            "xyz",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("--md5: expected 32 hex digits"),
        "{}",
        err(&o)
    );
}
