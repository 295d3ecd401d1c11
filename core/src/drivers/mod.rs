//! The hypervisor's own device drivers, found by `compatible` like
//! subsystems are found by name: each driver registers a descriptor in
//! [`IRQCHIPS`] or [`UARTS`] and is linked only when its board enables its
//! cargo feature (`gicv2`, `gicv3`, `pl011`, `cadence-uart`), so core names
//! no UART model and no GIC version, and an image carries only the drivers
//! its board needs. The boot code binds the host tree's interrupt
//! controller and console through [`bind_irqchip`] and [`bind_console`].
#![allow(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::console::Sink;
use crate::hostdt::{Gic, Uart as UartNode};
use crate::vgic::GicVersion;

#[cfg(feature = "cadence-uart")]
mod cadence;
#[cfg(feature = "gicv2")]
mod gicv2;
#[cfg(feature = "gicv3")]
mod gicv3;
#[cfg(feature = "pl011")]
mod pl011;

/// A UART the hypervisor writes its console to (and reads typed input
/// from).
pub trait Uart: Sink {
    /// The driver's name, for the boot log.
    fn name(&self) -> &'static str;
    fn base(&self) -> usize;
    /// A received byte, if one is waiting.
    fn try_get(&self) -> Option<u8>;
    /// Raises the UART's interrupt when input arrives.
    fn enable_rx_interrupt(&self);
    /// Waits until every byte has left the transmitter.
    fn flush(&self);
}

/// Where a UART driver keeps its two instances: the board's early UART
/// (set with the MMU off) and the console the host tree names, which is
/// the early one again when both are at one address.
pub(crate) struct UartSlots<T: Copy + 'static> {
    early: crate::arch::cell::BootCell<T>,
    console: spin::Once<T>,
}

impl<T: Uart + Copy + Send + Sync + 'static> UartSlots<T> {
    pub const fn new() -> Self {
        Self {
            early: crate::arch::cell::BootCell::new(),
            console: spin::Once::new(),
        }
    }

    /// Keeps `uart` as the early UART; the UART and whether this call set
    /// it (only the first call does).
    pub fn early(&'static self, uart: T) -> Option<(&'static T, bool)> {
        let first = self.early.set(uart);
        self.early.get_ref().map(|u| (u, first))
    }

    /// The console at `base`: `None` if that is RAM (a UART's registers
    /// are not); the early UART when it is the same one; else the one
    /// `make` creates, once.
    pub fn console(&'static self, base: u64, make: impl FnOnce() -> T) -> Option<&'static T> {
        if crate::arch::mem::is_ram(base) {
            return None;
        }
        if let Some(e) = self.early.get_ref().filter(|e| e.base() as u64 == base) {
            return Some(e);
        }
        Some(self.console.call_once(make))
    }
}

/// A UART driver.
pub struct UartDriver {
    pub name: &'static str,
    /// The `compatible` strings it binds.
    pub compatible: &'static [&'static str],
    /// The board's early UART at `base`, with the MMU off (only the first
    /// call of a driver creates it).
    pub early: fn(base: usize) -> Option<&'static dyn Uart>,
    /// The console the host tree names (registers outside RAM, mapped as
    /// Device memory by the identity map); `None` if it cannot be used.
    pub console: fn(node: &UartNode) -> Option<&'static dyn Uart>,
}

/// The virtual CPU interface state of one vCPU that the interrupt
/// controller keeps outside the list registers (GICv3: `ICH_VMCR_EL2` and
/// the active-priority registers; GICv2: `GICH_VMCR` and `GICH_APR`).
#[derive(Debug, Clone, Copy, Default)]
pub struct VifState {
    pub vmcr: u64,
    pub apr: [u64; 2],
}

/// An acknowledged interrupt: its INTID, and what the controller wants
/// back when it ends (a GICv2 SGI's acknowledgement carries the sender).
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub intid: u32,
    pub raw: u32,
}

/// The host interrupt controller: physical interrupts for the hypervisor
/// and the virtualization extension's list registers for guests. List
/// register values are exchanged in the vGIC model's (GICv3) format
/// whatever the hardware's.
pub trait IrqChip: Sync {
    /// `"GICv3"`, `"GICv2"`: the boot log's name.
    fn name(&self) -> &'static str;
    /// The boot log's line about what was found.
    fn describe(&self) -> String;
    /// SPIs the distributor implements.
    fn spis(&self) -> u32;
    /// The vGIC version guests get (the host's, as on Xen).
    fn guest_version(&self) -> GicVersion;
    /// The physical virtual-CPU-interface window (GICV) that is mapped at
    /// the guest's CPU interface, if the version has one: (address, size).
    fn guest_cpu_window(&self) -> Option<(u64, u64)>;
    /// Most vCPUs one guest may have with this controller.
    fn max_guest_vcpus(&self) -> u32;

    /// Brings up this (secondary) CPU's interface.
    fn init_cpu(&self, cpu: usize);
    /// Enables a private interrupt (SGI or PPI) on CPU `cpu`.
    fn enable_private(&self, cpu: usize, intid: u32);
    /// Enables a shared interrupt, routed to CPU `cpu` (MPIDR `mpidr`).
    fn enable_spi(&self, intid: u32, cpu: usize, mpidr: u64);
    /// Lets every priority through this CPU's interface.
    fn unmask_priorities(&self);
    /// Sends SGI `sgi` to CPU `cpu` (MPIDR `mpidr`).
    fn send_sgi(&self, sgi: u32, cpu: usize, mpidr: u64);
    /// Acknowledges the highest-priority pending interrupt, if any.
    fn ack(&self) -> Option<Acked>;
    /// Ends (drops the priority of and deactivates) an acknowledged one.
    fn eoi(&self, acked: Acked);

    /// Sets up this CPU's virtual interface for guests: disabled, every
    /// list register empty.
    fn vif_init_cpu(&self);
    /// List registers this CPU's virtual interface has.
    fn nr_lrs(&self) -> usize;
    fn read_lr(&self, n: usize) -> u64;
    fn write_lr(&self, n: usize, value: u64);
    /// The virtual interface's control: enabled, and whether to raise the
    /// maintenance interrupt when the list registers run (nearly) empty.
    fn set_vif_control(&self, enable: bool, underflow: bool);
    fn save_vif(&self, state: &mut VifState);
    fn restore_vif(&self, state: &VifState);
}

/// What an interrupt-controller driver's probe is.
pub type IrqChipProbe =
    fn(node: &Gic, mpidrs: &[u64], boot_cpu: usize) -> Result<&'static dyn IrqChip, String>;

/// An interrupt-controller driver.
pub struct IrqChipDriver {
    pub name: &'static str,
    /// The `compatible` strings it binds.
    pub compatible: &'static [&'static str],
    /// Initialises the distributor and the boot CPU's interface from the
    /// host tree's node, for the CPUs with these MPIDRs (by CPU index); an
    /// error names the node and what is wrong with it.
    pub probe: IrqChipProbe,
}

#[linkme::distributed_slice]
pub static IRQCHIPS: [IrqChipDriver];

#[linkme::distributed_slice]
pub static UARTS: [UartDriver];

static CHIP: spin::Once<&'static dyn IrqChip> = spin::Once::new();

/// The bound interrupt controller. Only called once [`bind_irqchip`] has
/// succeeded (the boot stops otherwise).
#[inline(always)]
pub fn chip() -> &'static dyn IrqChip {
    match CHIP.get() {
        Some(c) => *c,
        None => crate::boot::unbound_irqchip(),
    }
}

fn binds(list: &[&str], compatible: &[String]) -> bool {
    compatible.iter().any(|c| list.contains(&c.as_str()))
}

fn linked<'a>(drivers: impl Iterator<Item = (&'a str, &'a [&'a str])>) -> String {
    let v: Vec<String> = drivers
        .map(|(name, compat)| format!("{name} ({})", compat.join(", ")))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}

/// Binds the host tree's interrupt controller to the first linked driver
/// whose `compatible` it matches, and initialises it. Returns the driver's
/// name.
pub fn bind_irqchip(node: &Gic, mpidrs: &[u64], boot_cpu: usize) -> Result<&'static str, String> {
    let Some(driver) = IRQCHIPS
        .iter()
        .find(|d| binds(d.compatible, &node.compatible))
    else {
        return Err(format!(
            "{}: compatible = {} has no driver in this image (linked: {})",
            node.path,
            node.compatible_list(),
            linked(IRQCHIPS.iter().map(|d| (d.name, d.compatible)))
        ));
    };
    let chip = (driver.probe)(node, mpidrs, boot_cpu)?;
    CHIP.call_once(|| chip);
    Ok(driver.name)
}

/// The driver of the board's early UART (named by its `compatible`).
pub fn start_early(compatible: &str, base: usize) -> Option<&'static dyn Uart> {
    let uart = UARTS
        .iter()
        .find(|d| d.compatible.contains(&compatible))
        .and_then(|d| (d.early)(base))?;
    crate::console::set_early_sink(uart);
    Some(uart)
}

/// Binds the console UART the host tree names to a linked driver.
pub fn bind_console(node: &UartNode) -> Result<&'static dyn Uart, String> {
    let Some(driver) = UARTS.iter().find(|d| binds(d.compatible, &node.compatible)) else {
        let quoted: Vec<String> = node.compatible.iter().map(|c| format!("\"{c}\"")).collect();
        return Err(format!(
            "{}: compatible = {} has no driver in this image (linked: {})",
            node.path,
            quoted.join(", "),
            linked(UARTS.iter().map(|d| (d.name, d.compatible)))
        ));
    };
    (driver.console)(node).ok_or_else(|| {
        format!(
            "{}: the console's registers at {:#x} are in RAM",
            node.path, node.base
        )
    })
}

/// Every linked driver's name, for the boot log.
pub fn linked_names() -> String {
    let v: Vec<&str> = IRQCHIPS
        .iter()
        .map(|d| d.name)
        .chain(UARTS.iter().map(|d| d.name))
        .collect();
    v.join(", ")
}

/// Registers a driver descriptor in one of the slices above.
macro_rules! register {
    ($slice:path, $name:ident: $ty:ty = $value:expr;) => {
        #[linkme::distributed_slice($slice)]
        static $name: $ty = $value;
    };
}
pub(crate) use register;
