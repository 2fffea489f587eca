from django.core.management.base import BaseCommand

from hpadmin.operations import demo


class Command(BaseCommand):
    help = "Create the demo inventory (idempotent); --hosts/--vms add a large cluster for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--hosts", type=int, default=0, help="Hosts in the 'scale' cluster.")
        parser.add_argument("--vms", type=int, default=0, help="VMs in the 'scale' cluster.")
        parser.add_argument("--no-start", action="store_true", help="Leave every VM down.")

    def handle(self, *args, hosts: int, vms: int, no_start: bool, **options):
        created, to_start = demo.build_inventory()
        started = [] if no_start else demo.start_vms(to_start)
        self.stdout.write(f"Demo inventory ready ({len(created)} VMs created, {len(started)} started).")
        if hosts or vms:
            new_hosts, new_vms = demo.build_scale(hosts, vms)
            self.stdout.write(f"Scale cluster: {new_hosts} hosts and {new_vms} VMs added.")
        demo.ensure_admin(self.stdout)
