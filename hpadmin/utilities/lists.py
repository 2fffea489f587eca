"""List pages: a filter form, a whitelist of sortable columns, 50 rows a page, a fixed number of queries.

A value that does not parse is ignored, as list filters should.
"""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

PAGE_SIZE = 50


class ListFilterForm(forms.Form):
    """Base of every list filter: a name search; subclasses add choice filters and say how to apply them."""

    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"}))
    search_fields: tuple[str, ...] = ("name__icontains",)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "filter-%s")  # the page may hold a dialog with fields of the same names
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", f"{css} {css}-sm")
        self.fields["q"].widget.attrs.setdefault("placeholder", "Name contains…")

    def filter(self, queryset: QuerySet) -> QuerySet:
        self.is_valid()  # values that do not parse are simply missing from cleaned_data
        data = self.cleaned_data
        if data.get("q"):
            query = Q()
            for lookup in self.search_fields:
                query |= Q(**{lookup: data["q"]})
            queryset = queryset.filter(query)
        return self.apply(queryset, data)

    def apply(self, queryset: QuerySet, data: dict) -> QuerySet:
        return queryset


def with_any(choices, label: str = "Any"):
    """Choices with an empty first entry that filters nothing."""
    return [("", label), *choices]


def sorted_page(request, queryset: QuerySet, sorts: dict[str, str], default: str, per_page: int = PAGE_SIZE) -> dict:
    """Order by a whitelisted ``?sort=`` key (``-key`` for descending) and cut the ``?page=`` of ``per_page``.

    The sort and the cut run on primary keys only; the page's rows (with their joins and prefetches) are then
    loaded by key. Sorting narrow rows keeps deep pages of a 10,000-row list fast.
    """
    sort = request.GET.get("sort") or default
    key = sort.removeprefix("-")
    if key not in sorts:
        sort, key = default, default.removeprefix("-")
    order = sorts[key]
    keys = (
        queryset.select_related(None)
        .prefetch_related(None)
        .order_by(f"-{order}" if sort.startswith("-") else order, "pk")
    )
    page = Paginator(keys.values_list("pk", flat=True), per_page).get_page(request.GET.get("page"))
    ids = list(page.object_list)
    rows = queryset.in_bulk(ids) if ids else {}
    page.object_list = [rows[pk] for pk in ids]
    return {"page": page, "rows": page.object_list, "sort": sort}


def subquery_count(queryset: QuerySet, link: str):
    """A correlated COUNT: evaluated only for the rows of the page unless the list is sorted by it."""
    counted = queryset.filter(**{link: OuterRef("pk")}).order_by().values(link).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
