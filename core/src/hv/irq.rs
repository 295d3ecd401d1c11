//! Physical interrupts taken at EL2: the hypervisor timer (scheduling and
//! blocked vCPUs' timers), the running vCPU's virtual timer, kicks between
//! pCPUs, vGIC maintenance, and console input.

use alloc::vec::Vec;

use super::sched;
use crate::arch::guest::reg;
use crate::console_mux::{Event, Target};
use crate::guest_layout::GUEST_VTIMER_PPI;

/// Acknowledges and handles every pending physical interrupt.
pub fn handle_all() {
    handle_all_for(sched::current().as_ref());
}

/// [`handle_all`] on an exit from `cur`, the vCPU this pCPU runs (the
/// exit has it already: no second look-up).
pub fn handle_all_for(cur: Option<&super::VcpuRef>) {
    let gic = crate::drivers::chip();
    while let Some(acked) = gic.ack() {
        handle(acked.intid, cur);
        gic.eoi(acked);
    }
}

fn handle(id: u32, cur: Option<&super::VcpuRef>) {
    let hv = super::hv();
    let timer = &hv.platform.timer;
    if id == timer.hyp_phys {
        sched::on_tick();
    } else if id == timer.virt {
        // The loaded vCPU's virtual timer fired: mask its output (the guest
        // unmasks when it re-arms) and deliver the virtual PPI.
        reg::set_cntv_ctl(reg::cntv_ctl() | sched::CNTV_IMASK);
        if let Some(v) = cur {
            let kicks = v.dom.vgic.lock().inject(v.idx, GUEST_VTIMER_PPI);
            // `v` itself needs no kick: this exit lists the interrupt.
            sched::notify_mask(&v.dom, kicks.without(v.idx).0);
        }
    } else if hv.console.is_some() && hv.platform.console.as_ref().and_then(|c| c.intid) == Some(id)
    {
        console_input();
    }
    // Kicks (SGI) and vGIC maintenance need nothing here: every exit
    // re-syncs the list registers and re-examines the run queue.
}

/// Bytes kept for a domain's `console_io` reads.
const HVC_INPUT_MAX: usize = 1024;

/// A byte typed with the input on Oxen: the console commands
/// (`crate::console_cmd`).
fn hypervisor_input(byte: u8) {
    use crate::console_cmd::{self, Typed};
    let typed = super::hv().line.lock().feed(byte);
    match typed {
        Typed::Key(b'q') => sched::dump_state(),
        Typed::Echo(b) => crate::console::print_fmt(format_args!("{}", b as char)),
        Typed::Erase => crate::console::print_fmt(format_args!("\x08 \x08")),
        Typed::Line(line) => {
            crate::console::print_fmt(format_args!("\n"));
            match console_cmd::parse(&console_cmd::CONSOLE_COMMANDS, &line) {
                None => {}
                Some(Ok((cmd, args))) => (cmd.run)(args),
                Some(Err(word)) => {
                    crate::println!("unknown command \"{word}\" (type help and Enter)")
                }
            }
        }
        Typed::Key(_) | Typed::Nothing => {}
    }
}

/// Bytes typed on the physical console, routed by the Ctrl-a switch.
fn console_input() {
    let hv = super::hv();
    let Some(uart) = hv.console else { return };
    while let Some(b) = uart.try_get() {
        // Events are handled with the switch unlocked: a console command
        // may stop a domain, which takes it out of the switch.
        let mut events: Vec<Event> = Vec::new();
        hv.mux.lock().feed(b, &mut |ev| events.push(ev));
        for ev in events {
            match ev {
                Event::Input(Target::Domain(id), byte) => {
                    let Some(dom) = hv.domain(id) else { continue };
                    match &dom.vpl011 {
                        Some(vuart) => {
                            let level = {
                                let mut u = vuart.lock();
                                u.receive(&[byte]);
                                u.irq_level()
                            };
                            super::trap::update_uart_irq(&dom, level);
                        }
                        None => {
                            let mut q = dom.hvc_in.lock();
                            // Bounded like a UART FIFO: drop when nobody reads.
                            if q.len() < HVC_INPUT_MAX {
                                q.push_back(byte);
                            }
                        }
                    }
                }
                Event::Input(Target::Hypervisor, byte) => hypervisor_input(byte),
                Event::Switched(t) => match t {
                    Target::Hypervisor => crate::println!(
                        "*** Serial input to Oxen (type 'CTRL-a' three times to switch input)"
                    ),
                    Target::Domain(id) => crate::println!(
                        "*** Serial input to DOM{id} (type 'CTRL-a' three times to switch input)"
                    ),
                },
            }
        }
    }
}
