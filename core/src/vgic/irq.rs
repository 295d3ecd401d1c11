//! The state of one virtual interrupt and the rules that decide whether it
//! is offered to the guest.

/// One interrupt: an SGI or PPI of one vCPU, or an SPI.
#[derive(Clone, Copy, Debug)]
pub(super) struct Irq {
    pub enabled: bool,
    /// In the interrupt group the vGIC delivers: IGROUPR = 1 (group 1) on
    /// a vGICv3; on a vGICv2 every interrupt is group 0 and delivered, so
    /// this stays set.
    pub delivered_group: bool,
    /// ICFGR: edge-triggered rather than level-sensitive.
    pub edge: bool,
    pub priority: u8,
    /// Pending state not held by a list register: set by edges, injections
    /// and ISPENDR writes; for a level-sensitive interrupt it is the
    /// software-set part, which acknowledgement clears.
    pub latch: bool,
    /// The input line, for interrupts driven by `set_level`.
    pub line: bool,
    pub active: bool,
    /// A list register holds this interrupt (between flush and sync).
    pub listed: bool,
    /// ...and that register took over `latch`: it is handed back at sync
    /// unless the guest acknowledged it.
    pub carried: bool,
    /// The physical INTID backing this occurrence (an HW = 1 list register).
    pub hw: Option<u32>,
    /// SPIs only: the vCPU whose list registers hold it or that has it
    /// active; it stays there until it is inactive, whatever its routing
    /// register says.
    pub owner: Option<usize>,
    /// SPIs only: the vCPU its routing register (IROUTER or ITARGETSR)
    /// names, resolved when the guest writes it; `None` when it names no
    /// vCPU, which holds the SPI pending.
    pub target: Option<usize>,
}

/// What the list registers would show of an interrupt, reduced to what
/// decides whether a running vCPU must be kicked to see a change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Offer {
    /// Deliverable and pending, not yet in a list register.
    pub pending: bool,
    /// Its list register must ask for a maintenance interrupt at EOI.
    pub eoi: bool,
}

impl Offer {
    /// Whether going from `before` to `self` needs the vCPU to reload its
    /// list registers.
    pub fn gained_over(self, before: Offer) -> bool {
        (self.pending && !before.pending) || (self.eoi && !before.eoi)
    }
}

impl Irq {
    /// The reset state: disabled, in the delivered group, priority 0, SGIs
    /// edge-triggered and everything else level-sensitive, targeting vCPU 0.
    pub fn reset(intid: u32) -> Self {
        Self {
            enabled: false,
            delivered_group: true,
            edge: intid < 16,
            priority: 0,
            latch: false,
            line: false,
            active: false,
            listed: false,
            carried: false,
            hw: None,
            owner: None,
            target: Some(0),
        }
    }

    /// A level-sensitive interrupt whose line is asserted.
    #[inline(always)]
    pub fn level_high(&self) -> bool {
        !self.edge && self.line
    }

    /// Whether a list register for this interrupt would carry the pending
    /// state. A level line is not re-offered while the interrupt is active:
    /// it is sampled again when the guest deactivates it (EOI maintenance),
    /// so a handler that quietens the device sees no second interrupt. An
    /// HW interrupt is never pending and active in a list register, because
    /// its next occurrence can only come from the physical side.
    #[inline(always)]
    pub fn lr_pending(&self) -> bool {
        let line = self.level_high() && !self.active;
        let latch = self.latch && !(self.active && self.hw.is_some());
        line || latch
    }

    /// Whether the list register must ask for an EOI maintenance interrupt.
    #[inline(always)]
    pub fn needs_eoi_maintenance(&self) -> bool {
        self.level_high() && self.hw.is_none()
    }

    /// Enabled, in the delivered group, and that group enabled in the
    /// distributor (`group_enabled`).
    #[inline(always)]
    pub fn deliverable(&self, group_enabled: bool) -> bool {
        group_enabled && self.delivered_group && self.enabled
    }

    #[inline(always)]
    pub fn offer(&self, group_enabled: bool) -> Offer {
        let pending = self.deliverable(group_enabled) && self.lr_pending();
        Offer {
            pending,
            eoi: self.delivered_group && self.needs_eoi_maintenance() && (pending || self.active),
        }
    }

    /// Whether flush should give it a list register: pending and
    /// deliverable, or active (the guest must be able to deactivate it even
    /// if it has since been disabled).
    #[inline(always)]
    pub fn wants_lr(&self, group_enabled: bool) -> bool {
        self.delivered_group && (self.active || self.offer(group_enabled).pending)
    }

    /// [`wants_lr`](Self::wants_lr) with the distributor's delivered group
    /// enabled, or still in a list register: what keeps an interrupt in its
    /// vCPU's candidate set, so that enabling the group needs no rescan.
    #[inline(always)]
    pub fn may_want_lr(&self) -> bool {
        self.wants_lr(true) || self.listed || self.carried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled_spi() -> Irq {
        Irq {
            enabled: true,
            ..Irq::reset(40)
        }
    }

    #[test]
    fn sgis_reset_edge_and_others_level() {
        assert!(Irq::reset(15).edge);
        assert!(!Irq::reset(16).edge);
        assert!(!Irq::reset(32).edge);
    }

    #[test]
    fn level_line_is_not_offered_again_while_active() {
        let irq = Irq {
            line: true,
            active: true,
            ..enabled_spi()
        };

        assert!(irq.pending(), "ISPENDR still shows the asserted line");
        assert!(!irq.lr_pending());
        assert!(irq.offer(true).eoi, "EOI maintenance re-samples the line");
    }

    #[test]
    fn edge_latched_while_active_is_offered_pending_and_active() {
        let irq = Irq {
            edge: true,
            latch: true,
            active: true,
            ..enabled_spi()
        };

        assert!(irq.lr_pending());
        assert!(!irq.needs_eoi_maintenance());
    }

    #[test]
    fn hw_interrupt_is_not_offered_pending_while_active() {
        let irq = Irq {
            latch: true,
            active: true,
            hw: Some(27),
            ..enabled_spi()
        };

        assert!(!irq.lr_pending());
    }

    #[test]
    fn interrupt_outside_the_delivered_group_is_never_offered() {
        let irq = Irq {
            delivered_group: false,
            latch: true,
            ..enabled_spi()
        };

        assert!(!irq.wants_lr(true));
    }

    #[test]
    fn a_newly_needed_eoi_request_counts_as_a_gain() {
        let before = Offer {
            pending: true,
            eoi: false,
        };
        let after = Offer {
            pending: true,
            eoi: true,
        };

        assert!(after.gained_over(before));
        assert!(!before.gained_over(after));
    }
}
