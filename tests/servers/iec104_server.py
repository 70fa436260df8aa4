"""A c104 (lib60870) IEC 60870-5-104 server with one station; it answers TESTFR act with TESTFR con.
IEC 104 carries no vendor identity, so there is nothing else to configure."""

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--common-address", type=int, default=47)
args = launch.parse(parser)

c104 = launch.require("c104", "c104")
server = c104.Server(ip=args.address, port=args.port)
station = server.add_station(common_address=args.common_address)
station.add_point(io_address=11, type=c104.Type.M_ME_NC_1)
server.start()
launch.wait_bound(args.address, args.port, "tcp")
launch.ready(args.address, args.port)
launch.wait_forever()
