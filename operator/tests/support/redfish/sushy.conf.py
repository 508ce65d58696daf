# sushy-tools emulator configuration for operator/tests/redfish.rs. The emulator loads it with
# Flask's `config.from_pyfile` (sushy_tools/emulator/main.py, Application.configure), so only
# UPPER-CASE names count. The test passes its port, directories and options in PLASMA_SUSHY_*.
import os

SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = int(os.environ['PLASMA_SUSHY_PORT'])

# The fake driver (resources/systems/fakedriver.py): no libvirt, systems from the list below,
# power changes applied 1-11 s after the request. Its state lives in a sqlite file under
# SUSHY_EMULATOR_STATE_DIR (memoize.PersistentDict), /tmp/sushy-emulator unless set: each
# emulator of the test gets its own.
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_STATE_DIR = os.environ['PLASMA_SUSHY_STATE_DIR']

# htpasswd-style file, bcrypt digests only (auth_basic.py); the service root stays open.
SUSHY_EMULATOR_AUTH_FILE = os.environ['PLASMA_SUSHY_AUTH_FILE']

if os.environ.get('PLASMA_SUSHY_SSL_CERT'):
    SUSHY_EMULATOR_SSL_CERT = os.environ['PLASMA_SUSHY_SSL_CERT']
    SUSHY_EMULATOR_SSL_KEY = os.environ['PLASMA_SUSHY_SSL_KEY']

# With a URL, every change of a system (power, boot device, boot mode) is PUT there as JSON.
EXTERNAL_NOTIFICATION_URL = os.environ.get('PLASMA_SUSHY_NOTIFY_URL', '')
_notify = bool(EXTERNAL_NOTIFICATION_URL)

# The Redfish Id of a fake system is its uuid (FakeDriver.systems lists the uuids).
_systems = [
    {
        'uuid': '3c1f6a52-8a4e-4f0c-9d7e-1a2b3c4d5e01',
        'name': 'node-uefi',
        'power_state': 'Off',
        'boot_mode': 'UEFI',
        'external_notifier': _notify,
        'nics': [{'mac': '52:54:00:10:00:01', 'ip': '10.0.10.101'}],
    },
    {
        'uuid': '3c1f6a52-8a4e-4f0c-9d7e-1a2b3c4d5e02',
        'name': 'node-legacy',
        'power_state': 'On',
        'boot_mode': 'Legacy',
        'external_notifier': _notify,
        'nics': [{'mac': '52:54:00:10:00:02', 'ip': '10.0.10.102'}],
    },
]
_only = os.environ.get('PLASMA_SUSHY_ONLY')
SUSHY_EMULATOR_FAKE_SYSTEMS = [s for s in _systems if not _only or s['name'] == _only]
