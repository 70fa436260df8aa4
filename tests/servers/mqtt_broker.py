"""An amqtt MQTT broker on ADDRESS:PORT/tcp; with --anonymous it accepts clients without
credentials (CONNACK 0), otherwise it refuses them (CONNACK 5, not authorized)."""

import asyncio
import logging

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--anonymous", action="store_true")
args = launch.parse(parser)

launch.require("amqtt.broker", "amqtt")
from amqtt.broker import Broker  # noqa: E402

logging.getLogger("amqtt").setLevel(logging.CRITICAL)
logging.getLogger("transitions").setLevel(logging.CRITICAL)


async def main():
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{args.address}:{args.port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": args.anonymous}},
    })
    await broker.start()
    launch.ready(args.address, args.port)
    await asyncio.Event().wait()


asyncio.run(main())
