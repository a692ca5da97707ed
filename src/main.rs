fn main() { println!("{} {:?} {} {}", ddgsd_bench::shim::torch_version(), ddgsd_bench::shim::flags(), ddgsd_bench::shim::cpu_capability(), tch::Cuda::is_available()); }
