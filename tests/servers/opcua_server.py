"""An asyncua OPC UA server on opc.tcp://ADDRESS:PORT/ with the application description given on the
command line. By default it offers SecurityPolicy None with anonymous access; with --secure-only it
offers only Basic256Sha256 (Sign and SignAndEncrypt) with a fresh self-signed certificate and
user-name tokens, so GetEndpoints (still answered over a None channel) lists only secure policies."""

import asyncio
import logging
import tempfile
from pathlib import Path

import launch

parser = launch.arguments(__doc__)
parser.add_argument("--application-name", default="asyncua server")
parser.add_argument("--application-uri", default="urn:otscope:test:asyncua")
parser.add_argument("--product-uri", default="urn:freeopcua.github.io:python:server")
parser.add_argument("--secure-only", action="store_true")
args = launch.parse(parser)

launch.require("asyncua", "asyncua")
from asyncua import Server, ua  # noqa: E402
from asyncua.crypto.cert_gen import setup_self_signed_certificate  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402

logging.getLogger("asyncua").setLevel(logging.ERROR)


async def main():
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://{args.address}:{args.port}/")
    server.set_server_name(args.application_name)
    await server.set_application_uri(args.application_uri)
    server.product_uri = args.product_uri
    if args.secure_only:
        folder = Path(tempfile.mkdtemp(prefix="otscope-opcua-"))
        key, cert = folder / "key.pem", folder / "cert.der"
        await setup_self_signed_certificate(
            key, cert, args.application_uri, "localhost", [ExtendedKeyUsageOID.SERVER_AUTH],
            {"commonName": args.application_name, "organizationName": "otscope tests"},
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ])
        server.set_identity_tokens([ua.UserNameIdentityToken])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
    await server.start()
    launch.ready(args.address, args.port)
    await asyncio.Event().wait()


asyncio.run(main())
