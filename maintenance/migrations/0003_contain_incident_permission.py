from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('maintenance', '0002_maintenancestate_version'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='maintenancestate',
            options={'ordering': ['id'], 'permissions': [('contain_incident', 'Can contain an incident while the system is read-only or in maintenance')], 'verbose_name': 'maintenance state'},
        ),
    ]
