//! `ddgsd-bench bench` and `ddgsd-bench models` through the real binary
//! (output shape only: no timing assertions).
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ddgsd-bench"))
}

#[test]
fn bench_prints_one_row_per_architecture() {
    let out = bin()
        .args([
            "bench", "--arch", "resnet8", "--steps", "1", "--warmup", "1", "--batch", "4",
            "--device", "cpu",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "title, header, rule, the baseline's row and the arm's:\n{stdout}"
    );
    assert!(
        lines[0].starts_with("device cpu, ")
            && lines[0].contains("batch 4 images")
            && lines[0].contains("of the `ddgsd` arm, each after the baseline's"),
        "{}",
        lines[0]
    );
    let head: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        head[..10],
        [
            "arch", "arm", "input", "classes", "params", "images/s", "ms/step", "x", "baseline",
            "peak"
        ]
    );
    assert!(lines[2].chars().all(|c| c == '-'));
    for (line, arm) in lines[3..].iter().zip(["baseline", "ddgsd"]) {
        let row: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            row[..5],
            ["resnet8", arm, "cifar", "100", "81,140"],
            "{line}"
        );
        for v in &row[5..7] {
            assert!(
                v.parse::<f64>().map(|x| x > 0.0).unwrap_or(false),
                "not a positive number: {v} in {line}"
            );
        }
        // The ratio to the baseline's step: none on the baseline's own row.
        match arm {
            "baseline" => assert_eq!(row[7], "-", "{line}"),
            _ => assert!(
                row[7]
                    .strip_suffix('x')
                    .is_some_and(|r| r.parse::<f64>().is_ok_and(|r| r > 0.0)),
                "{line}"
            ),
        }
        assert!(row[8] == "-" || row[8].parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn bench_refuses_unknown_architectures_and_devices() {
    let out = bin()
        .args(["bench", "--arch", "vgg16", "--steps", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture `vgg16`"));
    let out = bin()
        .args(["bench", "--arch", "resnet8", "--device", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn models_lists_every_architecture_with_its_parameter_count() {
    let out = bin().args(["models"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let row = |name: &str| -> Vec<String> {
        let l = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{stdout}"));
        l.split_whitespace().take(4).map(str::to_string).collect()
    };
    assert_eq!(row("resnet32"), ["resnet32", "cifar", "10", "464,154"]);
    assert_eq!(row("wrn28_10"), ["wrn28_10", "cifar", "10", "36,479,194"]);
    assert_eq!(
        row("densenet_bc100"),
        ["densenet_bc100", "cifar", "10", "769,162"]
    );
    assert_eq!(
        row("imagenet_resnet18"),
        ["imagenet_resnet18", "imagenet", "1000", "11,689,512"]
    );
    assert_eq!(
        row("imagenet_resnet50"),
        ["imagenet_resnet50", "imagenet", "1000", "25,557,032"]
    );
    assert_eq!(
        row("alexnet"),
        ["alexnet", "imagenet", "1000", "61,100,840"]
    );
    for name in [
        "resnet110",
        "resnet18",
        "resnet50",
        "preact_resnet18",
        "wrn16_4",
    ] {
        row(name);
    }
    // Columns line up: every count ends where the `parameters` header ends.
    let header = stdout.lines().next().unwrap();
    let end = header.find("parameters").unwrap() + "parameters".len();
    for l in stdout
        .lines()
        .skip(2)
        .filter(|l| l.contains(',') && !l.starts_with("Also"))
    {
        assert!(
            l.as_bytes()[end - 1].is_ascii_digit() && l.as_bytes()[end] == b' ',
            "misaligned: {l}"
        );
    }
    let out = bin().args(["models", "--classes", "100"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().take(4).collect::<Vec<_>>()
                == ["resnet18", "cifar", "100", "11,220,132"]),
        "{stdout}"
    );
}

/// `bench --pytorch`: our step and loop and the PyTorch script's step and
/// loop on one tiny workload, in one table with the ratios.
#[test]
fn bench_pytorch_prints_both_figures_and_the_ratios() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = std::env::var_os("DDGSD_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let has_torch = Command::new(&py)
        .args(["-c", "import torch, torchvision"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_torch {
        println!(
            "SKIP: {} with torch and torchvision not found (bash ci/setup.sh makes it)",
            py.display()
        );
        return;
    }
    let out = bin()
        .args([
            "bench",
            "--pytorch",
            "--arch",
            "resnet8",
            "--batch",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--workers",
            "1",
            "--rounds",
            "2",
            "--device",
            "cpu",
            "--python",
        ])
        .arg(&py)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "| ddgsd-bench step",
        "| ddgsd-bench loop",
        "| PyTorch step",
        "| PyTorch loop (DataLoader, 1 workers",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row}:\n{stdout}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for v in &cells[2..5] {
            assert!(
                v.parse::<f64>().map(|x| x > 0.0).unwrap_or(false),
                "not a positive number: {v} in {line}"
            );
        }
        // The range over the rounds holds the median.
        let median: f64 = cells[4].parse().unwrap();
        let (lo, hi) = cells[5].split_once('-').unwrap();
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert!(lo <= median && median <= hi, "{line}");
    }
    assert!(
        stdout.contains("median of 2 interleaved rounds"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("round 2/2: PyTorch loop"), "{err}");
    // The second round runs the figures in the reverse order.
    let r2: Vec<&str> = err.lines().filter(|l| l.contains("round 2/2")).collect();
    assert!(
        r2[0].contains("PyTorch loop") && r2[3].contains("our step"),
        "{err}"
    );
    for r in [
        "our loop / PyTorch loop",
        "our step / PyTorch step",
        "our loop / our step",
    ] {
        assert!(stdout.contains(r), "no ratio {r}:\n{stdout}");
    }
    // A python without the script's packages is a one-line error, exit 2.
    let o = bin()
        .args([
            "bench",
            "--pytorch",
            "--arch",
            "resnet8",
            "--batch",
            "2",
            "--steps",
            "1",
        ])
        .args(["--device", "cpu", "--python", "/bin/false"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bench --pytorch: /bin/false"), "{err}");
}

/// `bench --loop --ranks 1,2`: the loop of a real data-parallel run at each
/// rank count, on the same cores, with the scaling efficiency.
#[test]
fn bench_loop_ranks_prints_a_row_per_rank_count() {
    let o = bin()
        .args([
            "bench",
            "--loop",
            "--ranks",
            "1,2",
            "--arch",
            "resnet8",
            "--steps",
            "2",
            "--batch",
            "8",
            "--rounds",
            "1",
            "--device",
            "cpu",
            "--threads",
            "2",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("| ranks | threads per rank | source images/s"),
        "{out}"
    );
    assert!(out.contains("\n| 1 | 2 | "), "{out}");
    assert!(out.contains("\n| 2 | 1 | "), "{out}");
    assert!(
        out.contains("| 1.00 |"),
        "the first row is the reference: {out}"
    );
    for bad in [
        &[
            "bench",
            "--loop",
            "--ranks",
            "3",
            "--threads",
            "2",
            "--device",
            "cpu",
        ][..],
        &["bench", "--ranks", "2"][..],
    ] {
        let o = bin().args(bad).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("bench --ranks"),
            "{bad:?}"
        );
    }
}
