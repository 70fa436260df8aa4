"""conpot 0.6.0, the ICS honeypot, serving one of its shipped templates unchanged except for where it
listens: every protocol named on the command line binds ADDRESS at the port given, every other
protocol of the template is disabled.

    conpot_server.py ADDRESS TEMPLATE PROTOCOL=PORT...    e.g. 127.0.0.40 default s7comm=102 modbus=502

conpot's own entry point is run with three changes that keep it on loopback and in this process:
the public-IP lookup of its testing configuration is switched off (it would reach the internet),
privileges are not dropped, and the template is a
temporary copy with the addresses rewritten. Its protocol code and template values are untouched.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading

import launch

TRANSPORTS = {"bacnet": ["udp"], "snmp": ["udp"], "tftp": ["udp"], "ipmi": ["udp"], "enip": ["tcp"]}

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("address")
parser.add_argument("template", help="a template shipped with conpot: default, guardian_ast, IEC104, ...")
parser.add_argument("ports", nargs="+", metavar="PROTOCOL=PORT")
parser.add_argument("--lifetime", type=float, default=300.0)
args = launch.parse(parser)
ports = dict((p.split("=")[0], int(p.split("=")[1])) for p in args.ports)

conpot = launch.require("conpot", "conpot==0.6.0 (installed with --no-deps)")
launch.require("gevent", "gevent")
from lxml import etree  # noqa: E402

package = os.path.dirname(os.path.abspath(conpot.__file__))
work = tempfile.mkdtemp(prefix="otscope-conpot-")

# The template, copied, with each protocol bound to ADDRESS:PORT or disabled.
template = os.path.join(work, "template")
shutil.copytree(os.path.join(package, "templates", args.template), template)
for protocol in os.listdir(template):
    xml = os.path.join(template, protocol, f"{protocol}.xml")
    if not os.path.isfile(xml):
        continue
    tree = etree.parse(xml)
    root = tree.getroot()
    if protocol in ports:
        root.set("host", args.address)
        root.set("port", str(ports[protocol]))
    else:
        root.set("enabled", "False")
    tree.write(xml)
unknown = set(ports) - set(os.listdir(template))
if unknown:
    sys.exit(f"template {args.template} has no protocol {', '.join(sorted(unknown))}")

# A package folder whose testing.cfg is conpot's own with the public-IP lookup off.
shadow = os.path.join(work, "package")
os.mkdir(shadow)
for entry in os.listdir(package):
    if entry != "testing.cfg":
        os.symlink(os.path.join(package, entry), os.path.join(shadow, entry))
with open(os.path.join(package, "testing.cfg")) as original:
    config = original.read()
config = config.replace("[fetch_public_ip]\nenabled = True", "[fetch_public_ip]\nenabled = False")
with open(os.path.join(shadow, "testing.cfg"), "w") as patched:
    patched.write(config)

entry_point = shutil.which("conpot", path=os.path.dirname(sys.executable))
if entry_point is None:
    print(f"MISSING conpot's entry point beside {sys.executable}", file=sys.stderr, flush=True)
    sys.exit(launch.MISSING)
namespace = {"__name__": "conpot_entry_point", "__file__": entry_point}
with open(entry_point) as source:
    exec(compile(source.read(), entry_point, "exec"), namespace)
namespace["package_directory"] = shadow
# conpot drops to "nobody" before it reads its configuration; kept as it is, the process could
# neither bind ports below 1024 nor read its private temporary folder.
namespace["drop_privileges"] = lambda *_: None


def announce_when_bound():
    for protocol, port in ports.items():
        for transport in TRANSPORTS.get(protocol, ["tcp"]):
            launch.wait_bound(args.address, port, transport, timeout=240)
    launch.ready(args.address, " ".join(args.ports))


threading.Thread(target=announce_when_bound, daemon=True).start()
os.chdir(work)
sys.argv = ["conpot", "--force", "--template", template, "--temp_dir", work, "--logfile", os.path.join(work, "conpot.log")]
namespace["fix_sslwrap"]()
namespace["main"]()
