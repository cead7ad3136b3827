//! The whole network-boot stack from library code: DHCP (proxy, beside the site's DHCP
//! server), TFTP for iPXE and HTTP for the script, kernel and initrd, every client booting one
//! kernel. What `netboot boot` does, in a page.
//!
//! ```sh
//! sudo cargo run -p pxe-examples --example whole_stack -- eth1 192.0.2.1 vmlinuz initrd.img
//! ```

use pxe::policy::{BootEveryone, LinuxBoot};
use pxe::{DhcpMode, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [interface, address, kernel, initrd] = args.as_slice() else {
        return Err("usage: whole_stack INTERFACE ADDRESS KERNEL INITRD".into());
    };
    let linux = LinuxBoot::new("/vmlinuz")
        .initrd("/initrd.img")
        .cmdline("console=ttyS0");
    let server = Server::builder(BootEveryone(linux))
        .interface(interface.as_str())
        .listen(address.parse()?)
        .dhcp(DhcpMode::Proxy)
        .http_file("/vmlinuz", kernel)
        .http_file("/initrd.img", initrd)
        .start()
        .await?;
    println!("serving: script at {}", server.script_url());
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.shutdown();
    });
    server.run().await?;
    Ok(())
}
