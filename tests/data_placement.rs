//! `[runtime] data`: batches built on the host and on the device give the
//! same checkpoint hashes and the same logged values, and the field is not
//! compared when a results directory is reused (it changes no bit).
mod common;
use common::*;

fn record(p: &Project, dir: &str, run: &str) -> serde_json::Value {
    let f = p.path().join(format!("results/{dir}/{run}/record.json"));
    serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap()
}

#[test]
fn host_and_device_batches_give_the_same_run() {
    let p = Project::new();
    for data in ["host", "device"] {
        let s = tiny_suite(
            "p",
            &["ddgsd", "baseline"],
            &[0],
            2,
            // Prefetch depth and loader threads change no bit either.
            &if data == "host" {
                format!("data = \"{data}\"")
            } else {
                format!("data = \"{data}\"\nprefetch = 5\nloader_threads = 1")
            },
        );
        p.write(&format!("suites/{data}.toml"), &s);
        let out = format!("results/{data}");
        let o = p.run(&[
            "run",
            &format!("suites/{data}.toml"),
            "--no-check",
            "--out",
            &out,
        ]);
        assert_eq!(code(&o), 0, "{data}: {}", stderr(&o));
    }
    for run in ["resnet8w4__ddgsd__s0", "resnet8w4__baseline__s0"] {
        let h = record(&p, "host/p", run);
        let d = record(&p, "device/p", run);
        assert_eq!(h["config"]["runtime"]["data"], "host");
        assert_eq!(d["config"]["runtime"]["data"], "device");
        assert_eq!(d["config"]["runtime"]["prefetch"], 5);
        assert_eq!(h["config"]["runtime"]["prefetch"], 2);
        assert_eq!(d["config"]["runtime"]["loader_threads"], 1);
        assert_eq!(h["checkpoint_sha256"], d["checkpoint_sha256"], "{run}");
        for k in HISTORY_VALUES {
            for e in 0..2 {
                assert_eq!(
                    h["history"][e][k], d["history"][e][k],
                    "{run} epoch {e} {k}"
                );
            }
        }
    }
    // A results directory made with host batches accepts the device path
    // (and another prefetch depth and loader width).
    let o = p.run(&[
        "run",
        "suites/device.toml",
        "--no-check",
        "--out",
        "results/host",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
