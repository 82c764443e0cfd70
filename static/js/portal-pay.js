/* Customer portal: paying selected invoices by card.
   The path that works with Stripe and with localstripe: our server makes a SetupIntent,
   confirmCardSetup turns the card into a PaymentMethod, our server creates and confirms the
   PaymentIntent, and confirmCardPayment runs 3-D Secure when the bank asks for it.
   Nothing is marked paid here: the result page waits for Stripe's webhook. */
(function () {
  "use strict";

  var form = document.getElementById("pay-form");
  if (!form || typeof window.Stripe !== "function") return;

  var data = form.dataset;
  var stripe = window.Stripe(data.publishableKey);
  var card = stripe.elements().create("card", { hidePostalCode: true });
  card.mount("#card-element");

  var button = document.getElementById("pay-button");
  var errorBox = document.getElementById("pay-error");
  var totalOut = document.getElementById("pay-total");
  var exponent = parseInt(totalOut.dataset.exponent || "2", 10);
  var formatter = new Intl.NumberFormat(data.locale || undefined, {
    style: "currency",
    currency: data.currency,
  });
  var busy = false;

  // Minor units to a decimal string, so no float ever carries the amount.
  function decimal(minor) {
    var negative = minor < 0;
    var digits = String(Math.abs(minor));
    if (exponent > 0) {
      while (digits.length <= exponent) digits = "0" + digits;
      digits = digits.slice(0, -exponent) + "." + digits.slice(-exponent);
    }
    return (negative ? "-" : "") + digits;
  }

  function selection() {
    var total = 0;
    var invoices = 0;
    var ids = [];
    form.querySelectorAll("input.pay-item:checked").forEach(function (box) {
      var sign = parseInt(box.dataset.sign, 10);
      total += sign * parseInt(box.dataset.minor, 10);
      if (sign > 0) invoices += 1;
      ids.push(box.value);
    });
    return { total: total, invoices: invoices, ids: ids };
  }

  function refresh() {
    var sel = selection();
    var text = formatter.format(decimal(sel.total));
    totalOut.textContent = text;
    if (!busy) {
      button.textContent = data.labelPay.replace("{amount}", text);
      button.disabled = sel.invoices === 0 || sel.total <= 0;
    }
    form.querySelectorAll("input.pay-item").forEach(function (box) {
      var row = box.closest("tr");
      if (row) row.classList.toggle("row-selected", box.checked);
    });
  }

  function showError(message) {
    errorBox.textContent = message || data.labelError;
    errorBox.classList.remove("hidden");
    errorBox.setAttribute("tabindex", "-1");
    errorBox.focus({ preventScroll: true });
    errorBox.scrollIntoView({ block: "nearest" });
  }

  function setBusy(value) {
    busy = value;
    button.disabled = value;
    form.classList.toggle("is-busy", value);
    if (value) button.textContent = data.labelPaying;
    else refresh();
  }

  async function post(url, fields) {
    var body = new URLSearchParams();
    body.append("_csrf_token", data.csrf);
    Object.keys(fields).forEach(function (name) {
      [].concat(fields[name]).forEach(function (value) {
        body.append(name, value);
      });
    });
    var response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-csrftoken": data.csrf },
        body: body,
      });
    } catch (err) {
      return { ok: false, error: data.labelUnavailable };
    }
    if (response.status === 401 || response.status === 403) {
      return { ok: false, error: data.labelSession };
    }
    var json = await response.json().catch(function () {
      return {};
    });
    if (!response.ok) {
      return { ok: false, error: json.error || data.labelError };
    }
    return { ok: true, data: json };
  }

  async function pay() {
    var sel = selection();
    var started = await post("/p/pay/start", { item: sel.ids });
    if (!started.ok) return started.error;

    var setup = await stripe.confirmCardSetup(started.data.client_secret, {
      payment_method: { card: card },
    });
    if (setup.error) return setup.error.message || data.labelError;
    var method = setup.setupIntent.payment_method;
    if (typeof method === "object" && method) method = method.id;

    var key = started.data.key;
    var confirmed = await post("/p/pay/confirm", { key: key, payment_method: method });
    if (!confirmed.ok) return confirmed.error;
    var answer = confirmed.data;

    if (answer.status === "requires_action") {
      var result = await stripe.confirmCardPayment(answer.client_secret);
      var intent = result.paymentIntent;
      if (result.error || !intent || intent.status === "requires_payment_method") {
        // Ask our server, which reads Stripe: the browser's word alone proves nothing.
        var ended = await post("/p/pay/authentication", { key: key });
        if (ended.ok && ended.data.status !== "declined") {
          window.location.assign(ended.data.next);
          return null;
        }
        return (ended.ok && ended.data.message) || (result.error && result.error.message) || data.labelError;
      }
    } else if (answer.status === "declined") {
      return answer.message || data.labelError;
    }
    window.location.assign(answer.next);
    return null;
  }

  form.addEventListener("change", function (event) {
    if (event.target instanceof HTMLInputElement && event.target.classList.contains("pay-item")) {
      refresh();
    }
  });

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (busy) return;
    errorBox.classList.add("hidden");
    setBusy(true);
    var problem;
    try {
      problem = await pay();
    } catch (err) {
      problem = data.labelError;
    }
    if (problem) {
      setBusy(false);
      showError(problem);
    }
  });

  refresh();
})();

/* A payment waiting for the bank's confirmation (3-D Secure left unfinished): Finish asks our
   server for Stripe's client secret and runs confirmCardPayment again; Cancel is a plain form
   (canceled at Stripe by our server). */
(function () {
  "use strict";

  if (typeof window.Stripe !== "function") return;
  document.querySelectorAll("section.pay-waiting").forEach(function (box) {
    var data = box.dataset;
    var button = box.querySelector("button.pay-finish");
    var errorBox = box.querySelector(".pay-waiting-error");
    if (!button) return;

    async function post(url) {
      var body = new URLSearchParams();
      body.append("_csrf_token", data.csrf);
      body.append("key", data.key);
      var response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-csrftoken": data.csrf },
        body: body,
      });
      var json = await response.json().catch(function () {
        return {};
      });
      if (!response.ok) throw new Error(json.error || "");
      return json;
    }

    button.addEventListener("click", async function () {
      button.disabled = true;
      errorBox.classList.add("hidden");
      try {
        var answer = await post("/p/pay/finish");
        if (answer.status === "requires_action") {
          var result = await window.Stripe(data.publishableKey).confirmCardPayment(answer.client_secret);
          if (result.error || !result.paymentIntent || result.paymentIntent.status === "requires_payment_method") {
            answer = await post("/p/pay/authentication");
          }
        }
        window.location.assign(answer.next);
      } catch (err) {
        button.disabled = false;
        errorBox.textContent = err.message || document.getElementById("pay-form")?.dataset.labelError || "";
        errorBox.classList.toggle("hidden", !errorBox.textContent);
      }
    });
  });
})();
