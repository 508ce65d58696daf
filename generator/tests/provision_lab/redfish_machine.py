"""The machine behind a Redfish BMC of the provisioning lab: sushy-tools' fake driver keeps
only a power state (applied lazily, 1-11 s after the request, when the system is next read:
sushy_tools/emulator/resources/systems/fakedriver.py, _update_if_needed). This reads the
system every half second, like a BMC's own management controller would notice, and when
PowerState turns On it starts the machine (machine.sh) booting the override target: network
when BootSourceOverrideTarget is Pxe, else its disk. Exits when stdin closes.

Usage: python redfish_machine.py SYSTEM_URL CA_FILE USER PASSWORD_FILE -- HOOK...
"""

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request


def main():
    url, ca, user, password_file = sys.argv[1:5]
    hook = sys.argv[6:]
    with open(password_file) as f:
        password = f.read().strip()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    ctx = ssl.create_default_context(cafile=ca)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    previous = None
    print("watching", flush=True)
    while True:
        try:
            req = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                system = json.load(resp)
        except Exception as e:  # the emulator restarting, a slow answer: look again
            print("read failed:", e, flush=True)
            time.sleep(0.5)
            continue
        state = system.get("PowerState")
        if state == "On" and previous != "On":
            target = system.get("Boot", {}).get("BootSourceOverrideTarget")
            device = "network" if target == "Pxe" else "default"
            print("power on, boots", device, flush=True)
            subprocess.Popen(hook, env=dict(os.environ, BOOT_DEVICE=device),
                             stdin=subprocess.DEVNULL)
        previous = state
        time.sleep(0.5)


if __name__ == "__main__":
    main()
