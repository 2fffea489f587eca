/* hpadmin: dialogs, list selection, the NUMA pinning editor's drag and drop, error toasts. */
(function () {
  "use strict";

  const modal = () => bootstrap.Modal.getOrCreateInstance(document.getElementById("modal"));

  // A fragment swapped into #modal-content opens the dialog; closing it empties the dialog.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "modal-content") {
      modal().show();
    }
  });
  document.addEventListener("hidden.bs.modal", (event) => {
    if (event.target.id === "modal") {
      document.getElementById("modal-content").replaceChildren();
    }
  });

  // The VM dialog re-renders from the server; remember which tab was open.
  document.addEventListener("shown.bs.tab", (event) => {
    const input = event.target.closest("form")?.querySelector("input[name=_tab]");
    if (input) {
      input.value = event.target.dataset.tab;
    }
  });

  // "Select all" checkboxes in lists, and filtering long lists in dialogs.
  document.addEventListener("change", (event) => {
    const name = event.target.dataset.selectAll;
    if (name) {
      const table = event.target.closest("table");
      table.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((box) => {
        box.checked = event.target.checked;
      });
    }
  });
  document.addEventListener("input", (event) => {
    const selector = event.target.dataset.filterRows;
    if (selector) {
      const text = event.target.value.trim().toLowerCase();
      document.querySelectorAll(selector).forEach((row) => {
        row.hidden = text !== "" && !row.dataset.name.toLowerCase().includes(text);
      });
    }
  });

  // NUMA pinning editor: dropping a vNUMA chip on a host node sets the chip's select, whose change event
  // makes the editor re-render from the server with the new pinning and its verdict per host. SortableJS
  // fires "change" events of its own on the zones while dragging: they stop at the zone, so that only a
  // field's change reaches the editor's trigger.
  function initNumaZones(root) {
    root.querySelectorAll("[data-numa-zone]").forEach((zone) => {
      if (zone.classList.contains("locked") || zone.dataset.sortable) {
        return;
      }
      zone.dataset.sortable = "1";
      zone.addEventListener("change", (event) => {
        if (event.target === zone) {
          event.stopPropagation();
        }
      });
      Sortable.create(zone, {
        group: zone.dataset.group,
        draggable: ".vnuma-chip:not(.disabled)",
        filter: "select",
        preventOnFilter: false,
        forceFallback: true,
        animation: 120,
        onAdd(evt) {
          const select = evt.item.querySelector("select");
          select.value = evt.to.dataset.node;
          select.dispatchEvent(new Event("change", { bubbles: true }));
        },
      });
    });
  }
  htmx.onLoad(initNumaZones);

  // Errors htmx does not swap (403, 500...) appear as a toast.
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    const text = status === 403 ? "You are not allowed to do this." : `The server answered ${status}.`;
    const toast = document.getElementById("toast");
    toast.querySelector(".toast-body").textContent = text;
    bootstrap.Toast.getOrCreateInstance(toast).show();
  });
})();
