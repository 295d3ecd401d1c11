//! Who the physical console's input goes to: the hypervisor or one domain,
//! switched by typing Ctrl-a three times, as on Xen.

use alloc::vec::Vec;

/// The byte that, typed three times in a row, switches the input focus.
pub const SWITCH_BYTE: u8 = 0x01;

/// How many [`SWITCH_BYTE`]s in a row switch the focus.
const SWITCH_COUNT: u8 = 3;

/// A receiver of console input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The hypervisor's own console.
    Hypervisor,
    /// The domain with this ID.
    Domain(u16),
}

/// What one input byte turned into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Deliver this byte to this target.
    Input(Target, u8),
    /// The focus moved to this target (the caller announces it, as Xen's
    /// `*** Serial input to DOM1 (type 'CTRL-a' three times to switch input)`).
    Switched(Target),
}

/// The input focus and the Ctrl-a counting that moves it.
///
/// The cycle is the hypervisor, then every domain in ascending domain ID,
/// then the hypervisor again. Ctrl-a (0x01) bytes are held back as they
/// arrive: the third one in a row is the switch, and all three are consumed.
/// When any other byte arrives after one or two of them, the held Ctrl-a
/// bytes are delivered first (to the target in focus at that moment), then
/// that byte, so a lone Ctrl-a reaches the guest, only later than it was
/// typed. A run of Ctrl-a longer than three switches once for each complete
/// group of three. This is Xen's behaviour.
#[derive(Clone, Debug)]
pub struct ConsoleMux {
    /// Sorted, without duplicates.
    domains: Vec<u16>,
    focus: Target,
    held: u8,
}

impl ConsoleMux {
    /// A switch over `domains` (in any order) with the focus on the
    /// hypervisor.
    pub fn new(domains: &[u16]) -> Self {
        let mut domains = domains.to_vec();
        crate::small_sort::sort(&mut domains);
        domains.dedup();
        Self {
            domains,
            focus: Target::Hypervisor,
            held: 0,
        }
    }

    /// Where input goes now.
    pub fn focus(&self) -> Target {
        self.focus
    }

    /// Takes one byte typed on the physical console.
    pub fn feed(&mut self, byte: u8, out: &mut dyn FnMut(Event)) {
        if byte == SWITCH_BYTE {
            self.held += 1;
            if self.held == SWITCH_COUNT {
                self.held = 0;
                out(Event::Switched(self.switch()));
            }
            return;
        }
        for _ in 0..core::mem::take(&mut self.held) {
            out(Event::Input(self.focus, SWITCH_BYTE));
        }
        out(Event::Input(self.focus, byte));
    }

    /// Moves the focus to the next target in the cycle and returns it, as
    /// three Ctrl-a do (e.g. to hand input to the first domain at the end of
    /// boot, as Xen does).
    pub fn switch(&mut self) -> Target {
        self.focus = self.after(self.focus);
        self.focus
    }

    /// Forgets a domain (destroyed). If it had the focus, the focus moves to
    /// the next target in the cycle; [`focus`](Self::focus) tells where.
    pub fn remove_domain(&mut self, domid: u16) {
        let Ok(i) = self.domains.binary_search(&domid) else {
            return;
        };
        self.domains.remove(i);
        if self.focus == Target::Domain(domid) {
            self.focus = self.after(self.focus);
        }
    }

    /// Adds a domain to the cycle at its place in domain-ID order.
    pub fn add_domain(&mut self, domid: u16) {
        if let Err(i) = self.domains.binary_search(&domid) {
            self.domains.insert(i, domid);
        }
    }

    /// The target after `from` in the cycle; `from` need not be in it.
    fn after(&self, from: Target) -> Target {
        let next = match from {
            Target::Hypervisor => self.domains.first(),
            Target::Domain(d) => self.domains.iter().find(|&&e| e > d),
        };
        next.map_or(Target::Hypervisor, |&d| Target::Domain(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(mux: &mut ConsoleMux, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &b in bytes {
            mux.feed(b, &mut |e| events.push(e));
        }
        events
    }

    #[test]
    fn starts_focused_on_the_hypervisor() {
        let mux = ConsoleMux::new(&[1, 2]);

        assert_eq!(mux.focus(), Target::Hypervisor);
    }

    #[test]
    fn triple_ctrl_a_cycles_through_every_domain_in_domid_order_and_back() {
        let mut mux = ConsoleMux::new(&[3, 1, 2]);

        let events = feed_all(&mut mux, &[SWITCH_BYTE; 12]);

        assert_eq!(
            events,
            [
                Event::Switched(Target::Domain(1)),
                Event::Switched(Target::Domain(2)),
                Event::Switched(Target::Domain(3)),
                Event::Switched(Target::Hypervisor),
            ]
        );
        assert_eq!(mux.focus(), Target::Hypervisor);
    }

    #[test]
    fn other_bytes_go_to_the_focused_target() {
        let mut mux = ConsoleMux::new(&[1]);

        let before = feed_all(&mut mux, b"a");
        feed_all(&mut mux, &[SWITCH_BYTE; 3]);
        let after = feed_all(&mut mux, b"b");

        assert_eq!(before, [Event::Input(Target::Hypervisor, b'a')]);
        assert_eq!(after, [Event::Input(Target::Domain(1), b'b')]);
    }

    #[test]
    fn double_ctrl_a_then_a_letter_forwards_both_ctrl_a_and_the_letter() {
        let mut mux = ConsoleMux::new(&[1]);
        mux.switch();

        let events = feed_all(&mut mux, &[SWITCH_BYTE, SWITCH_BYTE, b'x']);

        assert_eq!(
            events,
            [
                Event::Input(Target::Domain(1), SWITCH_BYTE),
                Event::Input(Target::Domain(1), SWITCH_BYTE),
                Event::Input(Target::Domain(1), b'x'),
            ]
        );
        assert_eq!(mux.focus(), Target::Domain(1));
    }

    #[test]
    fn held_ctrl_a_is_delivered_only_when_the_next_byte_arrives() {
        let mut mux = ConsoleMux::new(&[1]);

        let held = feed_all(&mut mux, &[SWITCH_BYTE]);
        let released = feed_all(&mut mux, b"q");

        assert!(held.is_empty());
        assert_eq!(
            released,
            [
                Event::Input(Target::Hypervisor, SWITCH_BYTE),
                Event::Input(Target::Hypervisor, b'q'),
            ]
        );
    }

    #[test]
    fn an_interrupted_run_does_not_count_towards_the_next_switch() {
        let mut mux = ConsoleMux::new(&[1]);

        feed_all(&mut mux, &[SWITCH_BYTE, SWITCH_BYTE, b'x', SWITCH_BYTE]);

        assert_eq!(mux.focus(), Target::Hypervisor);
    }

    #[test]
    fn with_no_domains_the_switch_stays_on_the_hypervisor() {
        let mut mux = ConsoleMux::new(&[]);

        let events = feed_all(&mut mux, &[SWITCH_BYTE; 3]);

        assert_eq!(events, [Event::Switched(Target::Hypervisor)]);
    }

    #[test]
    fn focus_moves_to_the_next_domain_when_the_focused_one_is_removed() {
        let mut mux = ConsoleMux::new(&[1, 2]);
        mux.switch();

        mux.remove_domain(1);

        assert_eq!(mux.focus(), Target::Domain(2));
    }

    #[test]
    fn focus_returns_to_the_hypervisor_when_the_last_domain_is_removed() {
        let mut mux = ConsoleMux::new(&[1, 2]);
        mux.switch();
        mux.switch();

        mux.remove_domain(2);
        let events = feed_all(&mut mux, b"z");

        assert_eq!(mux.focus(), Target::Hypervisor);
        assert_eq!(events, [Event::Input(Target::Hypervisor, b'z')]);
    }

    #[test]
    fn removing_an_unfocused_domain_takes_it_out_of_the_cycle_only() {
        let mut mux = ConsoleMux::new(&[1, 2, 3]);
        mux.switch();

        mux.remove_domain(2);
        let focus = mux.focus();
        mux.switch();

        assert_eq!(focus, Target::Domain(1));
        assert_eq!(mux.focus(), Target::Domain(3));
    }

    #[test]
    fn an_added_domain_joins_the_cycle_in_domid_order() {
        let mut mux = ConsoleMux::new(&[1, 5]);
        mux.add_domain(3);
        mux.add_domain(3);

        let order: Vec<Target> = (0..4).map(|_| mux.switch()).collect();

        assert_eq!(
            order,
            [
                Target::Domain(1),
                Target::Domain(3),
                Target::Domain(5),
                Target::Hypervisor,
            ]
        );
    }
}
