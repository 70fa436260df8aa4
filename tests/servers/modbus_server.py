"""A pymodbus Modbus/TCP server that answers Read Device Identification (43/14) with the objects
given on the command line, and holding registers with zeros."""

import asyncio

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--unit", type=int, default=1, help="the unit id served (others get no answer)")
for name in ("VendorName", "ProductCode", "MajorMinorRevision", "VendorUrl", "ProductName", "ModelName",
             "UserApplicationName"):
    parser.add_argument(f"--{name}", default="")
args = launch.parse(parser)

launch.require("pymodbus", "pymodbus")
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext  # noqa: E402
from pymodbus.pdu.device import ModbusDeviceIdentification  # noqa: E402
from pymodbus.server import ModbusTcpServer  # noqa: E402


async def main():
    device = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [0] * 16))
    context = ModbusServerContext(devices={args.unit: device}, single=False)
    identity = ModbusDeviceIdentification(info_name={
        name: getattr(args, name)
        for name in ("VendorName", "ProductCode", "MajorMinorRevision", "VendorUrl", "ProductName", "ModelName",
                     "UserApplicationName")
        if getattr(args, name)
    })
    server = ModbusTcpServer(context, identity=identity, address=(args.address, args.port))
    await server.serve_forever(background=True)
    launch.ready(args.address, args.port)
    await asyncio.Event().wait()


asyncio.run(main())
