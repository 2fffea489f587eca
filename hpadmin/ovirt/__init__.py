"""An oVirt-compatible REST API (``/ovirt-engine/``), so that ovirtsdk4 and Ansible's ``ovirt.ovirt`` scripts drive
hpadmin by changing only the URL. A face like ``hpadmin.api``, whose serializers it writes through: the same
validation, permissions and services, translated to and from oVirt's model."""
