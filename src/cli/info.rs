//! The commands that only print: `plan`, `env`, `hash`, `models`.
use crate::model::checkpoint;
use crate::suite::partition::Partition;
use crate::suite::{self, resolve::Overrides, Plan};
use crate::util::exit::Exit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

// The flags of `plan` (its help text is the doc comment of `Cmd::Plan`).
#[derive(Args)]
pub struct PlanArgs {
    /// Suite file (TOML)
    pub suite: PathBuf,
    /// Print the resolved config of every run as JSON instead
    #[arg(long)]
    pub json: bool,
    /// Only worker M's share of N (hash:M/N), as `run --partition` would train it
    #[arg(long)]
    pub partition: Option<String>,
}

pub fn plan(args: PlanArgs) -> Result<Exit> {
    let PlanArgs {
        suite: file,
        json,
        partition,
    } = args;
    let s = suite::load(&file, &Overrides::default())?;
    let part = partition.as_deref().map(Partition::parse).transpose()?;
    if json {
        let runs: Vec<_> = s
            .runs
            .iter()
            .filter(|r| part.is_none_or(|p| p.holds(&s, r)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", Plan::new(&s).describe(part));
    }
    Ok(Exit::Pass)
}

// The flags of `env` (its help text is the doc comment of `Cmd::Env`).
#[derive(Args)]
pub struct EnvArgs {
    /// Device: auto, cpu, cuda, cuda:N
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Thread count to pin
    #[arg(long, default_value_t = crate::platform::runtime::DEFAULT_THREADS)]
    pub threads: usize,
    /// Leave libtorch's deterministic-algorithm switches off
    #[arg(long)]
    pub nondeterministic: bool,
}

pub fn env(args: EnvArgs) -> Result<Exit> {
    let EnvArgs {
        device,
        threads,
        nondeterministic,
    } = args;
    let rt = crate::platform::runtime::RuntimeConfig {
        deterministic: !nondeterministic,
        ..crate::platform::runtime::RuntimeConfig::plain(&device, threads)
    };
    crate::platform::init(&rt)?;
    let dev = crate::platform::select_device(&rt)?;
    let env = crate::platform::collect(dev, &rt, crate::data::imagenet::decode::DECODER);
    let mut v = serde_json::to_value(&env)?;
    v["platform"] = serde_json::Value::String(env.platform());
    v["cuda_available"] = serde_json::Value::Bool(tch::Cuda::is_available());
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(Exit::Pass)
}

// The flags of `hash` (its help text is the doc comment of `Cmd::Hash`).
#[derive(Args)]
pub struct HashArgs {
    /// A model.safetensors written by ddgsd-bench (or any safetensors file)
    pub checkpoint: PathBuf,
}

pub fn hash(args: HashArgs) -> Result<Exit> {
    let HashArgs { checkpoint: path } = args;
    println!("{}  {}", checkpoint::hash_file(&path)?, path.display());
    Ok(Exit::Pass)
}

// The flags of `models` (its help text is the doc comment of `Cmd::Models`).
#[derive(Args)]
pub struct ModelsArgs {
    /// Classes of the final layer (default: 10 for CIFAR networks, 1000 for ImageNet ones)
    #[arg(long)]
    pub classes: Option<i64>,
}

pub fn models(args: ModelsArgs) -> Result<Exit> {
    let ModelsArgs { classes } = args;
    print!("{}", crate::model::registry_table(classes)?);
    Ok(Exit::Pass)
}
