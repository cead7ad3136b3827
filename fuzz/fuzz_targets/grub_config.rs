//! The GRUB config renderer with arbitrary decisions: rendering never panics, and every config
//! it writes boots exactly the decision in the model of GRUB's reader (`pxe_policy::grub::model`):
//! the kernel sees `BOOT_IMAGE=<kernel>` and the command line, the initrds are the paths given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_policy::grub::{self, model};
use pxe_policy::{LinuxBoot, ScriptDecision};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\u{1}');
    let kernel = parts.next().unwrap_or("").to_string();
    let initrd = parts.next().unwrap_or("").to_string();
    let cmdline = parts.next().unwrap_or("").to_string();
    let linux = LinuxBoot::new(kernel.clone())
        .initrd(initrd.clone())
        .cmdline(cmdline.clone());
    if let Ok(config) = grub::render(&ScriptDecision::Linux(linux)) {
        let kernel_path = format!("/{}", kernel.trim_start_matches('/'));
        let expected = if cmdline.is_empty() {
            format!("BOOT_IMAGE={kernel_path}")
        } else {
            format!("BOOT_IMAGE={kernel_path} {cmdline}")
        };
        assert_eq!(
            model::outcome(&config),
            Ok(model::Outcome::Linux {
                kernel: kernel_path,
                cmdline: expected,
                initrds: vec![format!("/{}", initrd.trim_start_matches('/'))],
            }),
            "{config}"
        );
    }
    if let Ok(config) = grub::render(&ScriptDecision::Chain(kernel.clone())) {
        assert_eq!(
            model::outcome(&config),
            Ok(model::Outcome::Chain(format!(
                "/{}",
                kernel.trim_start_matches('/')
            ))),
            "{config}"
        );
    }
});
