//! Bad input: one line naming the file and the field, exit code 2, nothing
//! already written lost.
mod common;
use common::*;

fn suite_with(p: &Project, text: &str) -> std::process::Output {
    p.write("suites/b.toml", text);
    p.run(&["plan", "suites/b.toml"])
}

#[test]
fn typos_wrong_types_and_unknown_names() {
    let p = Project::new();
    let good = tiny_suite("b", &["baseline"], &[0], 1, "");
    assert_eq!(code(&suite_with(&p, &good)), 0);

    let o = suite_with(&p, &good.replace("lr = 0.05", "lrr = 0.05"));
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("suites/b.toml:") && e.contains("unknown field `lrr`"),
        "{e}"
    );

    let o = suite_with(&p, &good.replace("epochs = 1", "epochs = \"ten\""));
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("suites/b.toml:") && e.contains("invalid type"),
        "{e}"
    );

    let o = suite_with(&p, &good.replace("\"baseline\"", "\"baselin\""));
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("field `arms[0]`") && e.contains("unknown arm `baselin`"),
        "{e}"
    );

    let o = suite_with(
        &p,
        &good.replace("name = \"resnet8\"", "name = \"resnet9\""),
    );
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("field `architectures[0]`") && e.contains("unknown architecture `resnet9`"),
        "{e}"
    );

    let o = suite_with(
        &p,
        &good.replace(
            "name = \"resnet8\", width = 4",
            "name = \"wrn16_4\", width = 4",
        ),
    );
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("field `architectures[0].width`: `wrn16_4` has no width parameter"),
        "{}",
        error_line(&o)
    );

    let o = suite_with(
        &p,
        &good.replace("name = \"resnet8\", width = 4", "name = \"alexnet\""),
    );
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o)
            .contains("`alexnet` is an architecture for imagenet inputs, the dataset is synthetic"),
        "{}",
        error_line(&o)
    );

    let o = suite_with(&p, &good.replace("batch_size = 32", "batch_size = 0"));
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("field `train.batch_size`: expected a positive value, got 0"));

    let o = suite_with(&p, &good.replace("device = \"cpu\"", "device = \"tpu\""));
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("field `runtime.device`"));

    let o = suite_with(&p, &format!("{good}\n[arm.baseline]\nlambda = 1.0\n"));
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("field `arm.baseline.lambda`: this arm has no KL term"),
        "{}",
        error_line(&o)
    );

    let o = suite_with(&p, &format!("{good}\n[arm.other]\nbase = \"ddgsd\"\n"));
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("field `arm.other`: defined but not listed in `arms`"));

    let o = p.run(&["plan", "suites/missing.toml"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("suites/missing.toml: cannot read"));
}

#[test]
fn bad_expected_files() {
    let p = Project::new();
    p.write(
        "suites/e.toml",
        &tiny_suite("e", &["baseline"], &[0], 1, ""),
    );
    let o = p.run(&["run", "suites/e.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    p.write("expected/e.toml", "suite = \"e\"\n[[band]]\narch = \"resnet8w4\"\narm = \"baseline\"\nmetric = \"top1_last\"\ncentre = 50\ntolerance = 5\nseeds = 1\nsource = \"x\"\n");
    let o = p.run(&["check", "results/e"]);
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("expected/e.toml:") && e.contains("top1_last"),
        "{e}"
    );
    p.write("expected/e.toml", "suite = \"e\"\n[[band]]\narch = \"resnet8w4\"\narm = \"baseline\"\nmetric = \"top1_final\"\ncentre = 50\ntolerance = -5\nseeds = 1\nsource = \"x\"\n");
    let o = p.run(&["check", "results/e"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("field `band[0].tolerance`"));
    p.write("expected/e.toml", "suite = \"other\"\n");
    let o = p.run(&["check", "results/e"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("field `suite`"));
    std::fs::remove_file(p.path().join("expected/e.toml")).unwrap();
    let o = p.run(&["check", "results/e"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("expected file not found"));
    let o = p.run(&["check", "results/nope"]);
    assert_eq!(code(&o), 2);
    assert!(error_line(&o).contains("results/nope: no such results directory"));
}

#[test]
fn unwritable_out_and_foreign_results_directories() {
    let p = Project::new();
    p.write(
        "suites/w.toml",
        &tiny_suite("w", &["baseline"], &[0], 1, ""),
    );
    // --out under a regular file cannot be created.
    p.write("afile", "x");
    let o = p.run(&["run", "suites/w.toml", "--no-check", "--out", "afile/sub"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("afile/sub/w: cannot create the results directory"),
        "{}",
        error_line(&o)
    );

    // A results directory of another suite under the same name is refused
    // and left as it was.
    p.write("results/w/suite.json", "{\"suite\":\"x\",\"suite_file\":\"s\",\"expected_file\":\"e\",\"archs\":[],\"arms\":[],\"seeds\":[]}");
    let before = std::fs::read(p.path().join("results/w/suite.json")).unwrap();
    let o = p.run(&["run", "suites/w.toml", "--no-check"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("results of suite `x`, not `w`"),
        "{}",
        error_line(&o)
    );
    assert_eq!(
        std::fs::read(p.path().join("results/w/suite.json")).unwrap(),
        before
    );
}

#[test]
fn a_changed_config_is_refused_naming_the_field() {
    let p = Project::new();
    let s = tiny_suite("g", &["baseline"], &[0], 1, "");
    p.write("suites/g.toml", &s);
    let o = p.run(&["run", "suites/g.toml", "--no-check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rec = std::fs::read(
        p.path()
            .join("results/g/resnet8w4__baseline__s0/record.json"),
    )
    .unwrap();
    p.write("suites/g.toml", &s.replace("lr = 0.05", "lr = 0.07"));
    let o = p.run(&["run", "suites/g.toml", "--no-check"]);
    assert_eq!(code(&o), 2);
    let e = error_line(&o);
    assert!(
        e.contains("config.json: field `train.schedule.lr`")
            && e.contains("0.05")
            && e.contains("0.07"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(
            p.path()
                .join("results/g/resnet8w4__baseline__s0/record.json")
        )
        .unwrap(),
        rec
    );
    // --threads is part of the config too.
    p.write("suites/g.toml", &s);
    let o = p.run(&["run", "suites/g.toml", "--no-check", "--threads", "1"]);
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("runtime.thread"),
        "{}",
        error_line(&o)
    );
}

#[test]
fn a_nan_loss_stops_the_run_with_exit_2() {
    let p = Project::new();
    p.write(
        "suites/n.toml",
        &tiny_suite("n", &["ddgsd"], &[0], 2, "").replace("lr = 0.05", "lr = 1e30"),
    );
    let o = p.run(&["run", "suites/n.toml", "--no-check"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = error_line(&o);
    assert!(
        e.contains("run resnet8w4__ddgsd__s0: epoch")
            && (e.contains("loss is NaN") || e.contains("loss is inf")),
        "{e}"
    );
    assert!(!p
        .path()
        .join("results/n/resnet8w4__ddgsd__s0/record.json")
        .exists());
}

/// The loss first goes non-finite in epoch 2 (lr 0.01 for the warm-up
/// epoch, then 1e30): the error names epoch 2 step 2 on both batch paths,
/// and the only checkpoint is the one written after epoch 1, before it.
#[test]
fn a_late_nan_loss_names_its_epoch_and_step_and_writes_no_checkpoint_after_it() {
    for data in ["host", "device"] {
        let p = Project::new();
        p.write(
            "suites/n.toml",
            &tiny_suite("n", &["ddgsd"], &[0], 3, &format!("data = \"{data}\"")).replace(
                "lr = 0.05",
                "lr = 1e30\nwarmup_epochs = 1\nwarmup_lr = 0.01",
            ),
        );
        let o = p.run(&["run", "suites/n.toml", "--no-check"]);
        assert_eq!(code(&o), 2, "{data}: {}", stderr(&o));
        let e = error_line(&o);
        assert!(
            e.contains("run resnet8w4__ddgsd__s0: epoch 2 step 2: loss is")
                && (e.contains("NaN") || e.contains("inf")),
            "{data}: {e}"
        );
        let ck = p.path().join("results/n/resnet8w4__ddgsd__s0/checkpoint");
        let st: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ck.join("state.json")).unwrap()).unwrap();
        assert_eq!(
            (st["epoch"].as_u64(), st["step_in_epoch"].as_u64()),
            (Some(1), Some(0)),
            "{data}"
        );
        let models = std::fs::read_dir(&ck)
            .unwrap()
            .filter(|f| {
                let n = f.as_ref().unwrap().file_name();
                n.to_string_lossy().starts_with("model-")
            })
            .count();
        assert_eq!(models, 1, "{data}: only the epoch-1 checkpoint exists");
        assert!(!p
            .path()
            .join("results/n/resnet8w4__ddgsd__s0/record.json")
            .exists());
    }
}

#[test]
fn bad_runtime_values_are_refused() {
    for (extra, field, expected) in [
        ("data = \"gpu\"", "runtime.data", "host or device"),
        ("prefetch = 0", "runtime.prefetch", "positive"),
    ] {
        let p = Project::new();
        p.write(
            "suites/d.toml",
            &tiny_suite("d", &["baseline"], &[0], 1, extra),
        );
        let o = p.run(&["run", "suites/d.toml", "--no-check"]);
        assert_eq!(code(&o), 2, "{extra}");
        let e = error_line(&o);
        assert!(
            e.contains("d.toml") && e.contains(field) && e.contains(expected),
            "{extra}: {e}"
        );
    }
}

#[test]
fn missing_data_says_where_to_get_it_and_writes_nothing() {
    let p = Project::new();
    let s = tiny_suite("d", &["baseline"], &[0], 1, "").replace(
        "name = \"synthetic\"\nclasses = 4\ntrain = 192\ntest = 64",
        "name = \"cifar10\"\npath = \"data/cifar-10-python.tar.gz\"",
    );
    p.write("suites/d.toml", &s);
    let o = p.run(&["run", "suites/d.toml", "--no-check"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let e = error_line(&o);
    assert!(
        e.contains("data/cifar-10-python.tar.gz: not found")
            && e.contains("ddgsd-bench data fetch cifar10 --to data"),
        "{e}"
    );
    assert!(
        !p.path().join("results").exists(),
        "nothing may be written before the input is known good"
    );
}

#[test]
fn method_fields_are_checked_by_name() {
    let p = Project::new();
    let base = tiny_suite("b", &SELFKD_ARMS, &[0], 1, "");
    assert_eq!(code(&suite_with(&p, &base)), 0);
    for (extra, want) in [
        (
            "[arm.cs_kd]\nmu = 1.0\n",
            "field `arm.cs_kd`: unknown field `mu`, expected `temperature` or `lambda` (method cs_kd)",
        ),
        (
            "[arm.ps_kd]\nalpha_T = 1.5\n",
            "field `arm.ps_kd.alpha_T`: expected a value in [0, 1] (method ps_kd)",
        ),
        (
            "[arm.tf_kd_reg]\nkl_reduction = \"sum\"\n",
            "field `arm.tf_kd_reg`: unknown variant `sum`",
        ),
        (
            "[arm.byot]\nkd = \"mse\"\n",
            "field `arm.byot`: unknown variant `mse`",
        ),
        (
            "[arm.tf_kd_self]\ntemperature = 0.0\n",
            "field `arm.tf_kd_self.temperature`: expected a positive value (method tf_kd_self)",
        ),
        (
            "[arm.tf_kd_reg]\ncorrect_prob = 1.0\n",
            "field `arm.tf_kd_reg.correct_prob`: expected a value in (0, 1)",
        ),
        (
            "[arm.label_smoothing]\nepsilon = \"big\"\n",
            "field `arm.label_smoothing`: invalid type",
        ),
        (
            "[arm.cs_kd]\npreset = \"selfkdlib\"\n",
            "field `arm.cs_kd.preset`: preset `selfkdlib` applies to the DDGSD arms",
        ),
        (
            "[arm.label_smoothing]\npreset = \"selfkdlib\"\n",
            "field `arm.label_smoothing.preset`: preset `selfkdlib` needs a two-view arm",
        ),
        (
            "[arm.ddgsd]\nalpha = 0.1\n",
            "field `arm.ddgsd`: unknown field `alpha`",
        ),
        (
            "[arm.cs_kd]\ndistortions = [\"crop_flip\"]\n",
            "field `arm.cs_kd.distortions`: expected 2 entries (one per view), got 1",
        ),
        (
            "[arm.cs_kd]\nforward = \"both\"\n",
            "field `arm.cs_kd.forward`: expected one of joint, separate",
        ),
    ] {
        let o = suite_with(&p, &format!("{base}\n{extra}"));
        assert_eq!(code(&o), 2, "{extra}");
        let e = error_line(&o);
        assert!(e.contains("suites/b.toml") && e.contains(want), "{extra}: {e}");
    }
    let o = suite_with(&p, &base.replace("\"cs_kd\"", "\"cs_kdd\""));
    assert_eq!(code(&o), 2);
    assert!(
        error_line(&o).contains("unknown arm `cs_kdd`: expected one of baseline, two_branch, two_branch_kl, two_branch_mmd, ddgsd, baseline_2x, cs_kd, ps_kd, tf_kd_reg, label_smoothing, tf_kd_self, byot"),
        "{}",
        error_line(&o)
    );
    // A method's arm of another name, and the plan names its constants.
    let mine = format!(
        "{}\n[arm.ps_kd_03]\nbase = \"ps_kd\"\nalpha_T = 0.3\n",
        base.replace("\"byot\"]", "\"byot\", \"ps_kd_03\"]")
    );
    let o = suite_with(&p, &mine);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains("resnet8w4__ps_kd_03__s0") && plan.contains("ps_kd  alpha_T 0.3"),
        "{plan}"
    );
    assert!(plan.contains("cs_kd  T 4  lambda 1"), "{plan}");
}
