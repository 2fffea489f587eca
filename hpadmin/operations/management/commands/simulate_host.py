from django.core.management.base import BaseCommand, CommandError

from hpadmin.hypervisor import simulated
from hpadmin.inventory.models import Host

ACTIONS = {
    "fail": (simulated.fail_host, "hangs: it stops answering, its VMs left as they were"),
    "reconnect": (simulated.reconnect_host, "answers again, its VMs as they were"),
    "power-off": (simulated.power_off_host, "is powered off: it does not answer and runs nothing"),
    "recover": (simulated.recover_host, "is back after a reboot: it answers again, with nothing running"),
}


class Command(BaseCommand):
    help = (
        "Make a simulated host fail, reconnect, lose its power or recover, to watch high availability at work "
        "(the heartbeat notices within HPADMIN_HOST_TIMEOUT seconds); or give it an extra CPU load (load HOST "
        "PERCENT), to watch load balancing at work."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=sorted([*ACTIONS, "load"]))
        parser.add_argument("host", help="The host's name.")
        parser.add_argument("percent", nargs="?", type=float, help="load: the extra CPU load, 0-100 %%.")

    def handle(self, *args, action: str, host: str, percent: float | None, **options):
        found = Host.objects.filter(name=host).first()
        if found is None:
            raise CommandError(f"There is no host named {host}.")
        if not found.uri.startswith("sim://"):
            raise CommandError(f"Host {host} is not simulated ({found.uri}).")
        if action == "load":
            if percent is None:
                raise CommandError("Say how much extra CPU load: load HOST PERCENT.")
            try:
                simulated.set_extra_load(found.uri, percent)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Host {host} carries {percent:g} % of CPU load besides its VMs.")
            return
        change, what = ACTIONS[action]
        change(found.uri)
        self.stdout.write(f"Host {host} {what}.")
