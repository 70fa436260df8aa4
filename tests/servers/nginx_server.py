"""nginx (Debian's package, not from PyPI) with a configuration file written by the test.

    nginx_server.py ADDRESS PORT --config FILE [--also PORT ...]

Runs `nginx -c FILE` in the foreground as a single process (the file says `daemon off;` and
`master_process off;`), waits until it listens on ADDRESS:PORT and every --also port, and prints
READY. nginx is ended with this launcher (it gets SIGKILL when its parent dies). Exit status 77
when no nginx binary is installed.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys

from launch import MISSING, arguments, parse, ready, wait_bound, wait_forever

PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main():
    parser = arguments(__doc__)
    parser.add_argument("--config", required=True, help="the nginx configuration file to run")
    parser.add_argument("--also", type=int, action="append", default=[], help="another port it listens on")
    args = parse(parser)
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if nginx is None:
        print("MISSING nginx: no nginx binary (apt-get install nginx-light)", file=sys.stderr, flush=True)
        sys.exit(MISSING)
    prefix = os.path.dirname(os.path.abspath(args.config))
    # -e: the error log from the first line on (before the file is read, nginx would use /var/log).
    server = subprocess.Popen(
        [nginx, "-p", prefix, "-c", os.path.abspath(args.config), "-e", os.path.join(prefix, "error.log")],
        preexec_fn=die_with_parent,
    )
    for port in [args.port, *args.also]:
        wait_bound(args.address, port, "tcp")
    if server.poll() is not None:
        sys.exit(f"nginx exited with {server.returncode}")
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    print(version, flush=True)
    ready(args.address, args.port)
    wait_forever()


if __name__ == "__main__":
    main()
