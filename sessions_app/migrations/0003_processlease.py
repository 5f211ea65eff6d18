from django.db import migrations, models


class Migration(migrations.Migration):
    # Every migration that names the old model must run before it is renamed.
    dependencies = [
        ("sessions_app", "0002_session_share_feedback_option_validators"),
        ("agents_app", "0001_initial"),
        ("voice_app", "0002_feedback"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="subscription", name="sessions_ap_session_689fdf_idx"),
        migrations.RenameModel("Worker", "ProcessLease"),
        migrations.RenameField("subscription", "worker", "lease"),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(fields=["session", "lease"], name="sessions_ap_session_283f3d_idx"),
        ),
    ]
