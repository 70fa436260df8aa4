"""A cpppo EtherNet/IP server (TCP and UDP on the same port) whose CIP Identity object, and so its
ListIdentity reply, carries the identity given on the command line."""

import os
import sys
import tempfile
import threading

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--vendor-id", type=int, default=1)
parser.add_argument("--device-type", type=int, default=14)
parser.add_argument("--product-code", type=int, default=54)
parser.add_argument("--revision", default="20.11", help="major.minor")
parser.add_argument("--serial", type=lambda s: int(s, 0), default=0x006C061A)
parser.add_argument("--product-name", default="1756-L61/B LOGIX5561")
args = launch.parse(parser)

launch.require("cpppo.server.enip.main", "cpppo")
from cpppo.server.enip import main as enip_main  # noqa: E402

major, minor = (int(part) for part in args.revision.split("."))
config = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
config.write(
    "[Identity]\n"
    f"Vendor Number = {args.vendor_id}\n"
    f"Device Type = {args.device_type}\n"
    f"Product Code Number = {args.product_code}\n"
    f"Product Revision = {(minor << 8) | major}\n"
    f"Serial Number = {args.serial}\n"
    f"Product Name = {args.product_name}\n"
)
config.close()


def announce_when_bound():
    launch.wait_bound(args.address, args.port, "tcp")
    launch.wait_bound(args.address, args.port, "udp")
    os.unlink(config.name)
    launch.ready(args.address, args.port)


threading.Thread(target=announce_when_bound, daemon=True).start()
sys.exit(enip_main.main(argv=["--config", config.name, "--address", f"{args.address}:{args.port}"]))
