"""python-snap7's own S7 server (pure Python since python-snap7 3.0), serving its built-in identity.

Its SZL 0x0011 and 0x001C answers are fixed in the package: order number 6ES7 315-2EH14-0AB0,
firmware V3.3.0 (one 26-byte record), AS name SNAP7-SERVER, module CPU 315-2 PN/DP, serial
S C-C2UR28922012, and a 0x001C header that says LENTHDR 0 / N_DR 0.
"""

import launch

args = launch.parse(launch.arguments(__doc__))
server_module = launch.require("snap7.server", "python-snap7")
server = server_module.Server(log=False)
server.start_to(args.address, args.port)
launch.ready(args.address, args.port)
launch.wait_forever()
