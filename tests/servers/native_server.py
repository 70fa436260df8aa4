"""A server from Debian's packages (not from PyPI) with a configuration file written by the test.

    native_server.py PROGRAM ADDRESS PORT --config FILE [--also PORT ...]

PROGRAM is `nginx` (nginx-light: TCP, one process in the foreground, the file says `daemon off;`
and `master_process off;`) or `snmpd` (net-snmp: UDP, in the foreground, reading only that file,
its persistent state beside it). The launcher waits until the program is bound to ADDRESS:PORT and
every --also port, prints the program's version, then READY. The program is ended with the
launcher (it gets SIGKILL when its parent dies). Exit status 77 when the program is not installed.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys

from launch import MISSING, arguments, parse, ready, wait_bound, wait_forever

PR_SET_PDEATHSIG = 1

# Per program: its Debian package, its transport, its command line and its version command.
PROGRAMS = {
    "nginx": {
        "package": "nginx-light",
        "transport": "tcp",
        # -e: the error log from the first line on (before the file is read, nginx would use /var/log).
        "command": lambda exe, a, here: [exe, "-p", here, "-c", a.config, "-e", os.path.join(here, "error.log")],
        "version": lambda exe: subprocess.run([exe, "-v"], capture_output=True, text=True).stderr.strip(),
    },
    "snmpd": {
        "package": "snmpd",
        "transport": "udp",
        # -f foreground, -Lo log to stdout, -C no other configuration file, the listening address.
        "command": lambda exe, a, here: [
            exe, "-f", "-Lo", "-C", "-c", a.config, "-p", os.path.join(here, "snmpd.pid"),
            *[f"udp:{a.address}:{port}" for port in [a.port, *a.also]],
        ],
        "version": lambda exe: "snmpd " + subprocess.run([exe, "-v"], capture_output=True, text=True).stdout.split()[2],
    },
}


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main():
    program = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if program not in PROGRAMS:
        sys.exit(f"usage: native_server.py {{{','.join(PROGRAMS)}}} ADDRESS PORT --config FILE")
    spec = PROGRAMS[program]
    parser = arguments(__doc__)
    parser.add_argument("--config", required=True, help="the configuration file to run")
    parser.add_argument("--also", type=int, action="append", default=[], help="another port it listens on")
    args = parse(parser)
    args.config = os.path.abspath(args.config)
    exe = shutil.which(program) or next((p for p in (f"/usr/sbin/{program}",) if os.access(p, os.X_OK)), None)
    if exe is None:
        print(f"MISSING {program}: not installed (apt-get install {spec['package']})", file=sys.stderr, flush=True)
        sys.exit(MISSING)
    here = os.path.dirname(args.config)
    env = dict(os.environ, SNMP_PERSISTENT_DIR=here, MIBS="")
    server = subprocess.Popen(spec["command"](exe, args, here), preexec_fn=die_with_parent, env=env)
    for port in [args.port, *args.also]:
        wait_bound(args.address, port, spec["transport"])
    if server.poll() is not None:
        sys.exit(f"{program} exited with {server.returncode}")
    print(spec["version"](exe), flush=True)
    ready(args.address, args.port)
    wait_forever()


if __name__ == "__main__":
    main()
