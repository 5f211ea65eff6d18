import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0003_processlease"),
        ("voice_app", "0002_feedback"),
    ]

    operations = [
        migrations.RenameField("audiostream", "worker", "lease"),
        migrations.AlterField(
            model_name="audiostream",
            name="lease",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="audio_streams",
                to="sessions_app.processlease",
            ),
        ),
    ]
