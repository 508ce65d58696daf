"""Prints the SUSHY_EMULATOR_AUTH_FILE line of user argv[1] with the password read from stdin.

sushy-tools accepts bcrypt digests only (auth_basic.py, parse_entry) and checks one on every
request, so the cost is the lowest bcrypt allows: this guards a test emulator, nothing else.
"""
import sys

import bcrypt

password = sys.stdin.buffer.read()
digest = bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()
print(f'{sys.argv[1]}:{digest}')
