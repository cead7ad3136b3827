//! The PXELINUX config renderer with arbitrary decisions, for `pxelinux.0` (TFTP) and
//! `lpxelinux.0` (HTTP): rendering never panics, and every config it writes boots exactly the
//! decision in the model of PXELINUX's reader (`pxe_policy::pxelinux::model`): the kernel sees
//! `BOOT_IMAGE=<kernel> <cmdline> initrd=<list>`, and the initrds loaded are the ones given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_policy::pxelinux::{self, model, Files};
use pxe_policy::{LinuxBoot, ScriptDecision};

fuzz_target!(|data: &[u8]| {
    let over_http = data.first().is_some_and(|b| b & 1 == 1);
    let text = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
    let mut parts = text.splitn(3, '\u{1}');
    let kernel = parts.next().unwrap_or("").to_string();
    let initrd = parts.next().unwrap_or("").to_string();
    let cmdline = parts.next().unwrap_or("").to_string();
    let files = if over_http {
        Files::Http {
            base: "http://192.0.2.1:8080".into(),
        }
    } else {
        Files::Tftp
    };
    let linux = LinuxBoot::new(kernel)
        .initrd(initrd)
        .cmdline(cmdline.clone());
    if let Ok(config) = pxelinux::render(&ScriptDecision::Linux(linux), &files) {
        let Ok(model::Outcome::Linux {
            kernel,
            cmdline: seen,
            initrds,
        }) = model::outcome(&config)
        else {
            panic!("not a linux boot: {config}");
        };
        assert_eq!(initrds.len(), 1, "{config}");
        let mut words = vec![format!("BOOT_IMAGE={kernel}")];
        if !cmdline.is_empty() {
            words.push(cmdline);
        }
        words.push(format!("initrd={}", initrds[0]));
        assert_eq!(seen, words.join(" "), "{config}");
    }
});
