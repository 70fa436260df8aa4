"""A bacpypes3 BACnet/IP device on ADDRESS:PORT/udp whose device object carries the identity given on
the command line; it answers Who-Is with I-Am and ReadProperty of its device object."""

import asyncio

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--instance", type=int, default=599)
parser.add_argument("--object-name", default="bacpypes3 device")
parser.add_argument("--vendor-id", type=int, default=999)
parser.add_argument("--vendor-name", default="bacpypes3")
parser.add_argument("--model-name", default="bacpypes3 model")
parser.add_argument("--firmware-revision", default="1.0")
parser.add_argument("--application-software-version", default="1.0")
parser.add_argument("--location", default="")
parser.add_argument("--description", default="")
args = launch.parse(parser)

launch.require("bacpypes3", "bacpypes3")
from bacpypes3.app import Application  # noqa: E402
from bacpypes3.local.device import DeviceObject  # noqa: E402
from bacpypes3.local.networkport import NetworkPortObject  # noqa: E402


async def main():
    device = DeviceObject(
        objectIdentifier=("device", args.instance),
        objectName=args.object_name,
        vendorIdentifier=args.vendor_id,
        vendorName=args.vendor_name,
        modelName=args.model_name,
        firmwareRevision=args.firmware_revision,
        applicationSoftwareVersion=args.application_software_version,
        location=args.location,
        description=args.description,
    )
    port = NetworkPortObject(
        f"{args.address}/32:{args.port}",
        objectIdentifier=("network-port", 1),
        objectName="NetworkPort-1",
        networkNumberQuality="unknown",
    )
    Application.from_object_list([device, port])
    await asyncio.get_running_loop().run_in_executor(None, launch.wait_bound, args.address, args.port, "udp")
    launch.ready(args.address, args.port)
    await asyncio.Event().wait()


asyncio.run(main())
