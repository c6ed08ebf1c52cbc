from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('maintenance', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='maintenancestate',
            name='version',
            field=models.PositiveBigIntegerField(default=0, editable=False, help_text='Grows with every change of the state or the windows (microseconds since the epoch, or one more than before): no process keeps an older state over a newer one.'),
        ),
    ]
