"""An IPMI 2.0 (RMCP+) BMC on a loopback UDP port, for operator/tests/ipmi.rs, the
VM tests and `plasmagen lab up`.

Built on pyghmi's BMC server (pyghmi.ipmi.bmc.Bmc, the base of virtualbmc), so the real
`ipmitool -I lanplus` talks to it. It keeps a power state and a boot device and appends every
call it receives as one JSON line to the log file, which the test reads.

Usage: python fake_bmc.py LOG_FILE
  FAKE_BMC_USER / FAKE_BMC_PASSWORD come from the environment (never argv, so the test can
  check that no process shows the password). The bound port is printed as `listening PORT`
  on stdout. The emulator exits when its stdin closes, so it cannot outlive the test (unless
  FAKE_BMC_DETACHED is set: the rehearsal lab of `plasmagen lab up`, lab/src/bmc.rs).
  FAKE_BMC_ADDRESS / FAKE_BMC_PORT: where to listen (default 127.0.0.1, a free port).
  FAKE_BMC_ON_BOOT: a shell command run whenever the machine starts (power on from off, or a
  reset/cycle while on), with BOOT_DEVICE set to the device the machine boots: the one-shot
  device when one was set (then cleared, as a real BMC does), else "default". The provisioning
  tests use it to start the machine's SSH server: the installer when it network-booted.
"""

import json
import os
import subprocess
import sys
import threading

import pyghmi.ipmi.bmc as bmc

# IPMI completion code D5h: "cannot execute command, command or request parameter(s) not
# supported in present state" (what the spec recommends for a power cycle of a machine that
# is off, and what real BMCs answer).
NOT_IN_PRESENT_STATE = 0xD5


class FakeBmc(bmc.Bmc):
    def __init__(self, authdata, log_path):
        # Port 0: the kernel picks a free port; pyghmi binds exactly the address given.
        super().__init__(
            authdata,
            port=int(os.environ.get("FAKE_BMC_PORT", "0")),
            address=os.environ.get("FAKE_BMC_ADDRESS", "127.0.0.1"),
        )
        # pyghmi routes a session's packets by (client address, self.port) and compares that
        # with the socket's real port, so self.port must be the port the kernel chose.
        self.port = self.serversocket.getsockname()[1]
        self.power = "off"
        self.bootdev = "default"
        self.persistent = False
        self.log_file = open(log_path, "a", buffering=1)

    def boot(self):
        """The machine starts: boots the one-shot device (then forgets it) or its default."""
        hook = os.environ.get("FAKE_BMC_ON_BOOT")
        device = self.bootdev
        if not self.persistent:
            self.bootdev = "default"
        self.log(call="boot", device=device)
        if hook:
            subprocess.Popen(
                ["sh", "-c", hook],
                env=dict(os.environ, BOOT_DEVICE=device),
                stdin=subprocess.DEVNULL,
            )

    def log(self, **entry):
        self.log_file.write(json.dumps(entry) + "\n")

    def get_power_state(self):
        self.log(call="get_power_state", state=self.power)
        return self.power

    def power_on(self):
        self.log(call="power_on", before=self.power)
        was = self.power
        self.power = "on"
        if was != "on":
            self.boot()

    def power_off(self):
        self.log(call="power_off", before=self.power)
        self.power = "off"

    def power_reset(self):
        self.log(call="power_reset", before=self.power)
        if self.power != "on":
            return NOT_IN_PRESENT_STATE
        self.boot()
        return 0

    def power_cycle(self):
        self.log(call="power_cycle", before=self.power)
        if self.power != "on":
            return NOT_IN_PRESENT_STATE
        self.boot()
        return 0

    def get_boot_device(self):
        self.log(call="get_boot_device", device=self.bootdev)
        return self.bootdev

    def set_system_boot_options(self, request, session):
        # pyghmi hands set_boot_device() only the device (data[2] bits 5:2); the one-shot and
        # firmware-type bits are in boot flags byte 1 (data[1]): bit 7 valid, bit 6
        # persistent, bit 5 EFI (IPMI 2.0 table 28-14; ipmitool lib/ipmi_chassis.c BF1_*).
        data = request["data"]
        if data[0] == 5 and len(data) > 1:
            flags = data[1]
            self.persistent = bool(flags & 0x40)
            self.log(
                call="boot_flags",
                valid=bool(flags & 0x80),
                persistent=bool(flags & 0x40),
                uefi=bool(flags & 0x20),
            )
        return super().set_system_boot_options(request, session)

    def set_boot_device(self, bootdevice):
        self.log(call="set_boot_device", device=bootdevice)
        self.bootdev = bootdevice


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    user = os.environ["FAKE_BMC_USER"]
    password = os.environ["FAKE_BMC_PASSWORD"]
    server = FakeBmc({user: password}, sys.argv[1])
    # `plasmagen lab up` runs it detached (FAKE_BMC_DETACHED=1): `lab down` kills it by pid.
    if not os.environ.get("FAKE_BMC_DETACHED"):
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print("listening %d" % server.port, flush=True)
    server.listen()


if __name__ == "__main__":
    main()
