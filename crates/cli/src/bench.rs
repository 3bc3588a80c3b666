//! Placeholder replaced below.
use clap::Args;
#[derive(Args, Clone)]
pub struct BenchArgs {}
pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("not yet".into())
}
