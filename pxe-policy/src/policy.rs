use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BootDecision, ClientFacts, LinuxBoot, ScriptDecision};

/// What an application implements to decide what each client boots.
///
/// Two stages ask: the DHCP server ([`Policy::boot`]: chainload iPXE, hand out a file, or
/// stay silent) and the HTTP server ([`Policy::script`]: what the iPXE script does). Methods
/// take `&self` and may do I/O (a database, an inventory service); servers call them
/// concurrently. For a trait object use [`DynPolicy`] / [`SharedPolicy`].
pub trait Policy: Send + Sync + 'static {
    /// The DHCP stage. The default chainloads the iPXE build for the client's architecture.
    fn boot<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = BootDecision> + Send + 'a {
        std::future::ready(BootDecision::chainload_for(client.arch))
    }

    /// The HTTP stage: what the iPXE script for this client does.
    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a;
}

/// A boxed future, as [`DynPolicy`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Policy`], implemented for every `Policy`.
pub trait DynPolicy: Send + Sync + 'static {
    /// [`Policy::boot`], boxed.
    fn boot_boxed<'a>(&'a self, client: &'a ClientFacts) -> BoxFuture<'a, BootDecision>;
    /// [`Policy::script`], boxed.
    fn script_boxed<'a>(&'a self, client: &'a ClientFacts) -> BoxFuture<'a, ScriptDecision>;
}

impl<P: Policy> DynPolicy for P {
    fn boot_boxed<'a>(&'a self, client: &'a ClientFacts) -> BoxFuture<'a, BootDecision> {
        Box::pin(self.boot(client))
    }

    fn script_boxed<'a>(&'a self, client: &'a ClientFacts) -> BoxFuture<'a, ScriptDecision> {
        Box::pin(self.script(client))
    }
}

/// A cheaply clonable, type-erased policy that servers hold.
#[derive(Clone)]
pub struct SharedPolicy(Arc<dyn DynPolicy>);

impl SharedPolicy {
    /// Wraps any policy.
    pub fn new(policy: impl Policy) -> Self {
        Self(Arc::new(policy))
    }
}

impl std::fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedPolicy(..)")
    }
}

impl Policy for SharedPolicy {
    fn boot<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = BootDecision> + Send + 'a {
        self.0.boot_boxed(client)
    }

    fn script<'a>(
        &'a self,
        client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        self.0.script_boxed(client)
    }
}

/// The simplest ready policy: chainload iPXE on every client (by architecture) and boot every
/// client into the same Linux kernel, like pixiecore's boot mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEveryone(pub LinuxBoot);

impl Policy for BootEveryone {
    fn script<'a>(
        &'a self,
        _client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        std::future::ready(ScriptDecision::Linux(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_ready as block_on;
    use crate::{Arch, ClientKind, IpxeBinary, MacAddr};

    #[test]
    fn shared_policy_delegates() {
        let linux = LinuxBoot::new("vmlinuz")
            .initrd("initrd.img")
            .cmdline("quiet");
        let policy = SharedPolicy::new(BootEveryone(linux.clone()));
        let mut client = ClientFacts::new(MacAddr([2, 0, 0, 0, 0, 1]), ClientKind::FirmwarePxe);
        client.arch = Some(Arch::X64_UEFI);
        assert_eq!(
            block_on(policy.boot(&client)),
            BootDecision::Ipxe(IpxeBinary::SNPONLY_EFI)
        );
        assert_eq!(
            block_on(policy.clone().script(&client)),
            ScriptDecision::Linux(linux)
        );
        client.arch = Some(Arch::S390_BASIC);
        assert_eq!(block_on(policy.boot(&client)), BootDecision::Ignore);
        client.arch = None;
        assert_eq!(
            block_on(policy.boot(&client)),
            BootDecision::Ipxe(IpxeBinary::UNDIONLY)
        );
    }
}
