"""A libiec61850 (pyiec61850-ng) IEC 61850 MMS server with a one-node data model, whose MMS Identify
answer carries the vendor, model and revision given on the command line."""

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--vendor", default="libiec61850.com")
parser.add_argument("--model", default="LIBIEC61850")
parser.add_argument("--revision", default="1.6")
args = launch.parse(parser)

launch.require("pyiec61850.pyiec61850", "pyiec61850-ng")
import pyiec61850.pyiec61850 as iec61850  # noqa: E402

model = iec61850.IedModel_create("otscope")
device = iec61850.LogicalDevice_create("LD0", model)
node = iec61850.LogicalNode_create("LLN0", device)
iec61850.CDC_ENS_create("Mod", iec61850.toModelNode(node), 0)
server = iec61850.IedServer_create(model)
iec61850.IedServer_setLocalIpAddress(server, args.address)
iec61850.IedServer_setServerIdentity(server, args.vendor, args.model, args.revision)
iec61850.IedServer_start(server, args.port)
if not iec61850.IedServer_isRunning(server):
    raise SystemExit(f"libiec61850 server did not start on {args.address}:{args.port}")
launch.wait_bound(args.address, args.port, "tcp")
launch.ready(args.address, args.port)
launch.wait_forever()
