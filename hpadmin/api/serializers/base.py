"""What every resource's serializers share. The rules are the models' own ``clean()``, reached through
``ValidatedModelSerializer``, so the API refuses what the UI's forms refuse."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from rest_framework import relations, serializers
from rest_framework.settings import api_settings

from hpadmin.access.policy import CLUSTER_PATH
from hpadmin.access.shortcuts import access_of

# Linux numbers at most 1024 NUMA nodes (NODES_SHIFT = 10).
MAX_NUMA_NODE = 1023
MAX_INT = BaseDatabaseOperations.integer_field_ranges["IntegerField"][1]


def detail_url(basename: str) -> serializers.HyperlinkedIdentityField:
    return serializers.HyperlinkedIdentityField(view_name=f"api:{basename}-detail")


class FiniteFloatField(serializers.FloatField):
    """A float that JSON can carry: NaN and infinity are refused."""

    default_error_messages = {"not_finite": "Give a finite number."}

    def to_internal_value(self, data) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("not_finite")
        return value


class RelatedListField(serializers.ManyRelatedField):
    """A list of references by id. DRF's takes any iterable, so that a JSON object would pass as the list of its
    keys: here it is refused as what it is, not a list."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            self.fail("not_a_list", input_type=type(data).__name__)
        return super().to_internal_value(data)


class VisiblePrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference by id that finds only what the caller may see: an id outside their view is refused as one
    that does not exist. With ``many=True``, a ``RelatedListField`` of them."""

    @classmethod
    def many_init(cls, *args, **kwargs):
        kept = {key: value for key, value in kwargs.items() if key in relations.MANY_RELATION_KWARGS}
        return RelatedListField(child_relation=cls(*args, **kwargs), **kept)

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is None or queryset.model not in CLUSTER_PATH:
            return queryset
        return access_of(request).scope(queryset)


class ValidatedModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose rules are the model's: ``validate()`` builds the object as it would be saved and
    runs its ``full_clean()``, whose errors come back as field errors (``error_paths`` puts the errors of model
    fields the API shows under another name where the client sent them). Integer fields take only what the
    column holds on every supported database, whatever the one in use would accept."""

    error_paths: dict[str, tuple[str, ...]] = {}
    serializer_related_field = VisiblePrimaryKeyRelatedField

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        portable = BaseDatabaseOperations.integer_field_ranges.get(model_field.get_internal_type())
        if portable is not None and issubclass(field_class, serializers.IntegerField) and not kwargs.get("read_only"):
            low, high = portable
            kwargs["min_value"] = max(kwargs.get("min_value", low), low)
            kwargs["max_value"] = min(kwargs.get("max_value", high), high)
        return field_class, kwargs

    def m2m_names(self) -> set[str]:
        return {f.name for f in self.Meta.model._meta.many_to_many}

    def build(self, attrs: dict) -> models.Model:
        """The object as it would be saved: a copy of the instance (so a refused change leaves it alone) or a new
        one, with ``attrs`` applied except many-to-many values, which are set once the object is saved."""
        obj = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        m2m = self.m2m_names()
        for name, value in attrs.items():
            if name not in m2m:
                setattr(obj, name, value)
        return obj

    def validate(self, attrs: dict) -> dict:
        try:
            self.build(attrs).full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(self.field_errors(exc)) from None
        return attrs

    def field_errors(self, exc: DjangoValidationError) -> dict:
        errors: dict = {}
        for name, messages in exc.message_dict.items():
            default = api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name
            path = self.error_paths.get(name, (default,))
            target = errors
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target.setdefault(path[-1], []).extend(messages)
        return errors

    @transaction.atomic
    def create(self, validated_data: dict) -> models.Model:
        return self._save(self.build(validated_data), validated_data)

    @transaction.atomic
    def update(self, instance: models.Model, validated_data: dict) -> models.Model:
        return self._save(self.build(validated_data), validated_data)

    def _save(self, obj: models.Model, attrs: dict) -> models.Model:
        obj.save()
        for name in self.m2m_names() & attrs.keys():
            getattr(obj, name).set(attrs[name])
        return obj


class ErrorSerializer(serializers.Serializer):
    """A refused action: a message, and messages per field (or per VM) when there are any."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
