from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

ACTIVE = ("pending", "scheduling", "migrating")


def end_duplicate_jobs(apps, schema_editor):
    """Earlier versions could leave several active jobs for one VM; all but the oldest end as failed, so that
    the constraint can hold (the watchdog settles the one left)."""
    job_model = apps.get_model("operations", "MigrationJob")
    allocation_model = apps.get_model("scheduler", "Allocation")
    kept: set[int] = set()
    for job in job_model.objects.filter(state__in=ACTIVE).order_by("vm_id", "created_at", "pk"):
        if job.vm_id in kept:
            allocation_model.objects.filter(job=job, state="pending").delete()
            job_model.objects.filter(pk=job.pk).update(
                state="failed",
                error="Ended on upgrade: another migration of this VM was already in progress.",
                finished_at=timezone.now(),
            )
        kept.add(job.vm_id)


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("operations", "0001_initial"),
        ("scheduler", "0001_initial"),
        ("vms", "0003_virtualmachine_status_changed_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(end_duplicate_jobs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="migrationjob",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ACTIVE)),
                fields=("vm",),
                name="one_active_job_per_vm",
            ),
        ),
    ]
