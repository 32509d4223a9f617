//! The policy gate of the local stack (`scripts/stack.sh` starts it): the functions' AWS
//! endpoints point here, and every call is evaluated against the policies
//! `infra/template.yaml` gives the calling function's role before it is forwarded
//! ([`test_support::policy_gate`]).
//!
//! Usage: `policy-gate LISTEN_PORT MOTO_URL RECORDER_URL RECORDER_SERVICES LOG_FILE`, where
//! RECORDER_SERVICES is a comma-separated list of SigV4 service names forwarded to the
//! recorder (scripts/rds-recorder.py) instead of moto, e.g. `rds,iam,sts`.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use test_support::policy_gate::{Gate, GateConfig};
use test_support::template::{self, Deployment};
use tokio::net::TcpListener;

fn usage() -> ! {
    eprintln!("usage: policy-gate LISTEN_PORT MOTO_URL RECORDER_URL RECORDER_SERVICES LOG_FILE");
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, moto_url, recorder_url, services, log] = args.as_slice() else {
        usage()
    };
    let port: u16 = port.parse().unwrap_or_else(|_| usage());
    let resolved = Deployment::test_bed()
        .resolve(&template::raw())
        .unwrap_or_else(|e| {
            eprintln!("policy-gate: infra/template.yaml: {e}");
            std::process::exit(1)
        });
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url)
        .load()
        .await;
    let gate = Gate::new(GateConfig {
        template: &resolved,
        moto_url: moto_url.clone(),
        recorder_url: recorder_url.clone(),
        recorder_services: services
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        log: &PathBuf::from(log),
        aws: &aws,
    })
    .unwrap_or_else(|e| {
        eprintln!("policy-gate: {e}");
        std::process::exit(1)
    });
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("policy-gate: 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        });
    eprintln!(
        "policy-gate on 127.0.0.1:{port}: the roles of {}",
        gate.functions().collect::<Vec<_>>().join(", ")
    );
    let gate = Arc::new(gate);
    while let Ok((stream, _)) = listener.accept().await {
        let gate = gate.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gate = gate.clone();
                async move { Ok::<_, std::convert::Infallible>(gate.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
