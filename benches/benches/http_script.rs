//! The per-request work of pxe-http's script endpoint without the network: query to facts,
//! and a decision to an `#!ipxe` script (plain values, and values carried in settings).

// criterion_group! expands to an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pxe_http::{facts_from_query, render_decision};
use pxe_policy::{LinuxBoot, ScriptDecision};

const QUERY: &str = "mac=52-54-00-12-34-56&uuid=9e0c1ab0-0000-4000-8000-000000000001\
&serial=SN%201&asset=&manufacturer=QEMU&product=Standard%20PC&buildarch=x86_64\
&platform=efi&hostname=web-01&ip=192.0.2.10";

fn script_endpoint(c: &mut Criterion) {
    c.bench_function("http_facts_from_query", |b| {
        b.iter(|| facts_from_query(black_box(QUERY), None).unwrap())
    });
    let facts = facts_from_query(QUERY, None).unwrap();
    let plain = ScriptDecision::Linux(
        LinuxBoot::new("http://192.0.2.1/vmlinuz")
            .initrd("http://192.0.2.1/initrd.img")
            .cmdline("console=ttyS0,115200 quiet"),
    );
    c.bench_function("http_render_plain", |b| {
        b.iter(|| render_decision(black_box(&plain), &facts).unwrap())
    });
    let carried = ScriptDecision::Linux(
        LinuxBoot::new("http://192.0.2.1/vmlinuz")
            .initrd("http://192.0.2.1/initrd.img")
            .cmdline("console=ttyS0  pxe.note=\"a # b || c\""),
    );
    c.bench_function("http_render_carried", |b| {
        b.iter(|| render_decision(black_box(&carried), &facts).unwrap())
    });
}

criterion_group!(benches, script_endpoint);
criterion_main!(benches);
