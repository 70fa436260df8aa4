"""The C Snap7 server (libsnap7, as bundled in python-snap7 2.x wheels), serving its built-in identity.

python-snap7 2.x and 3.x cannot share one environment, so the install script puts 2.0.2 (with its
libsnap7.so) in the `libsnap7` folder of the environment, and this launcher imports it from there.
"""

import os
import sys

import launch

args = launch.parse(launch.arguments(__doc__))
sys.path.insert(0, os.path.join(sys.prefix, "libsnap7"))
server_module = launch.require("snap7.server", "python-snap7==2.0.2 in <venv>/libsnap7")
if not os.path.exists(os.path.join(os.path.dirname(server_module.__file__), "..", "lib", "libsnap7.so")):
    print(f"MISSING libsnap7.so beside {server_module.__file__}", file=sys.stderr, flush=True)
    sys.exit(launch.MISSING)
server = server_module.Server(log=False)
server.start_to(args.address, args.port)
launch.wait_bound(args.address, args.port, "tcp")
launch.ready(args.address, args.port)
launch.wait_forever()
