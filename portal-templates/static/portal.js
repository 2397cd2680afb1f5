// Progressive enhancement for the dashboard: refresh its figures every 5 s. Without
// JavaScript the page shows the figures as of loading; nothing else depends on this.
(function () {
  'use strict';
  var root = document.querySelector('[data-live-dashboard]');
  if (!root) return;
  function refresh() {
    fetch('/admin/dashboard.json', { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        Object.keys(data.figures).forEach(function (key) {
          var el = root.querySelector('[data-figure="' + key + '"]');
          if (el) el.textContent = data.figures[key];
        });
        var labs = root.querySelector('[data-online-labs]');
        if (labs) {
          labs.replaceChildren.apply(labs, data.online.map(function (row) {
            var tr = document.createElement('tr');
            var lab = document.createElement('td');
            lab.textContent = row.lab;
            var n = document.createElement('td');
            n.className = 'num';
            n.textContent = row.devices;
            tr.append(lab, n);
            return tr;
          }));
        }
      })
      .catch(function () { /* keep the last figures */ });
  }
  setInterval(refresh, 5000);
})();
