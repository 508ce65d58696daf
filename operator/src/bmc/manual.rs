//! No BMC: a person powers the machine and picks its boot device. Each action prints what to
//! do; the caller then waits for the machine (the installer's SSH, a collector report).

use std::io::Write;
use std::sync::Mutex;

use super::{Action, Bmc, BmcError, BootMode, PowerState};

/// Instructions go to `out` (stderr for the CLI), one line each.
pub struct Manual {
    machine: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Manual {
    pub fn new(machine: impl Into<String>, out: Box<dyn Write + Send>) -> Manual {
        Manual {
            machine: machine.into(),
            out: Mutex::new(out),
        }
    }

    fn say(&self, line: &str) -> Result<(), BmcError> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed terminal must not fail the provisioning run: the instruction is also logged.
        let _ = writeln!(out, "{line}");
        tracing::info!(machine = %self.machine, "{line}");
        Ok(())
    }
}

fn instruction(machine: &str, action: Action) -> String {
    match action {
        Action::PowerState => format!("{machine}: no BMC: its power state is unknown"),
        Action::PxeBootOnce(BootMode::Uefi) => {
            format!("{machine}: choose a one-time network boot (UEFI PXE) in its boot menu")
        }
        Action::PxeBootOnce(BootMode::Legacy) => {
            format!("{machine}: choose a one-time network boot (legacy PXE) in its boot menu")
        }
        Action::PowerOn => format!("{machine}: power it on"),
        Action::PowerCycle => format!("{machine}: reset it (power off, then on)"),
        Action::PowerOff => format!("{machine}: power it off"),
    }
}

impl Bmc for Manual {
    fn describe(&self) -> String {
        format!("manual ({})", self.machine)
    }

    fn power_state(&self) -> Result<PowerState, BmcError> {
        Ok(PowerState::Unknown)
    }

    fn pxe_boot_once(&self, mode: BootMode) -> Result<(), BmcError> {
        self.say(&instruction(&self.machine, Action::PxeBootOnce(mode)))
    }

    fn power_on(&self) -> Result<(), BmcError> {
        self.say(&instruction(&self.machine, Action::PowerOn))
    }

    fn power_cycle(&self) -> Result<(), BmcError> {
        self.say(&instruction(&self.machine, Action::PowerCycle))
    }

    fn power_off(&self) -> Result<(), BmcError> {
        self.say(&instruction(&self.machine, Action::PowerOff))
    }

    fn plan(&self, action: Action) -> Vec<String> {
        vec![format!("# {}", instruction(&self.machine, action))]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_action_tells_the_person_what_to_do_and_nothing_is_claimed_about_power() {
        let sink = Sink::default();
        let m = Manual::new("node04", Box::new(sink.clone()));
        assert_eq!(m.power_state().unwrap(), PowerState::Unknown);
        m.pxe_boot_once(BootMode::Uefi).unwrap();
        m.power_on().unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "node04: choose a one-time network boot (UEFI PXE) in its boot menu\nnode04: power it on\n"
        );
        assert_eq!(
            m.plan(Action::PowerCycle),
            ["# node04: reset it (power off, then on)"]
        );
    }
}
