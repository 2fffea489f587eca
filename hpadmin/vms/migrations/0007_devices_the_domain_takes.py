"""Devices the domain takes: smart card and multi queues go (no SPICE console, no NIC or disk to give queues to),
and the iTCO watchdog, which libvirt accepts only on a q35 machine, gives way to i6300esb."""

from django.db import migrations, models


def itco_to_i6300esb(apps, schema_editor):
    for model in ("VirtualMachine", "Template", "Pool"):
        apps.get_model("vms", model).objects.filter(watchdog="itco").update(watchdog="i6300esb")


class Migration(migrations.Migration):
    dependencies = [
        ("vms", "0006_use_tsc_frequency"),
    ]

    operations = [
        migrations.RunPython(itco_to_i6300esb, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="pool",
            name="multi_queues",
        ),
        migrations.RemoveField(
            model_name="pool",
            name="smartcard_enabled",
        ),
        migrations.RemoveField(
            model_name="template",
            name="multi_queues",
        ),
        migrations.RemoveField(
            model_name="template",
            name="smartcard_enabled",
        ),
        migrations.RemoveField(
            model_name="virtualmachine",
            name="multi_queues",
        ),
        migrations.RemoveField(
            model_name="virtualmachine",
            name="smartcard_enabled",
        ),
        migrations.AlterField(
            model_name="pool",
            name="watchdog",
            field=models.CharField(
                choices=[("none", "No watchdog"), ("i6300esb", "i6300esb")], default="none", max_length=16
            ),
        ),
        migrations.AlterField(
            model_name="template",
            name="watchdog",
            field=models.CharField(
                choices=[("none", "No watchdog"), ("i6300esb", "i6300esb")], default="none", max_length=16
            ),
        ),
        migrations.AlterField(
            model_name="virtualmachine",
            name="watchdog",
            field=models.CharField(
                choices=[("none", "No watchdog"), ("i6300esb", "i6300esb")], default="none", max_length=16
            ),
        ),
    ]
