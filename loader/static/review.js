// loader review: one click or one key records a decision. No framework, no CDN; every text
// from the server is set with textContent, never parsed as HTML.
"use strict";
(function () {
  const token = location.pathname.split("/")[2];
  const folders = Array.from(document.querySelectorAll("section.folder"));
  let current = -1;

  function select(index) {
    if (index < 0 || index >= folders.length) return;
    if (current >= 0) folders[current].classList.remove("current");
    current = index;
    folders[current].classList.add("current");
    folders[current].scrollIntoView({ block: "nearest" });
  }

  function nextOpen(from) {
    for (let i = from + 1; i < folders.length; i++) {
      if (!folders[i].dataset.decided) return i;
    }
    return -1;
  }

  function showOutcome(section, text, failed) {
    const outcome = section.querySelector(".outcome");
    outcome.textContent = text;
    outcome.classList.toggle("failed", Boolean(failed));
  }

  // The server's warning (the decision would unlink another folder), with the choice.
  function askFirst(section, customerId, warning) {
    const box = section.querySelector(".confirm");
    const text = document.createElement("p");
    text.textContent = warning;
    const go = document.createElement("button");
    go.type = "button";
    go.className = "confirm-record";
    go.textContent = "record anyway";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "confirm-cancel";
    cancel.textContent = "cancel";
    const close = () => { box.hidden = true; box.replaceChildren(); };
    go.addEventListener("click", () => { close(); decide(section, customerId, true); });
    cancel.addEventListener("click", close);
    box.replaceChildren(text, go, cancel);
    box.hidden = false;
    go.focus();
  }

  async function decide(section, customerId, confirmed = false) {
    const response = await fetch("decide", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": token },
      body: JSON.stringify({
        folder: section.dataset.folder, customer_id: customerId, confirmed: confirmed,
      }),
      credentials: "same-origin",
    });
    if (!response.ok) {
      showOutcome(section, "not recorded: " + (await response.text()), true);
      return;
    }
    const answer = await response.json();
    if (answer.confirm) {
      askFirst(section, customerId, answer.confirm);
      return;
    }
    section.dataset.decided = customerId === null ? "none" : String(customerId);
    showOutcome(section, customerId === null ? "→ no customer" : "→ customer " + customerId);
    document.getElementById("decided").textContent = answer.decided;
    document.getElementById("total").textContent = answer.total;
    const next = nextOpen(folders.indexOf(section));
    if (next >= 0) select(next);
  }

  function pick(section, n) {
    const buttons = section.querySelectorAll("button.pick");
    if (n < buttons.length) decide(section, Number(buttons[n].dataset.customer));
  }

  function skip(section) {
    const next = nextOpen(folders.indexOf(section));
    if (next >= 0) select(next);
  }

  async function search(section, input) {
    const list = section.querySelector(".results");
    const query = input.value.trim();
    list.replaceChildren();
    if (query.length < 1) return;
    const response = await fetch("search?q=" + encodeURIComponent(query));
    if (!response.ok || input.value.trim() !== query) return;
    for (const c of await response.json()) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "found";
      button.textContent =
        (c.name || "(no name)") + " · #" + c.id + " · phone …" + (c.phone4 || "----") +
        " · folder_name " + (c.folder_name || "-");
      button.addEventListener("click", () => decide(section, c.id));
      item.append(button);
      list.append(item);
    }
  }

  folders.forEach((section, index) => {
    section.addEventListener("click", (event) => {
      if (!event.target.closest("button")) select(index);
    });
    section.querySelectorAll("button.pick").forEach((button) =>
      button.addEventListener("click", () => decide(section, Number(button.dataset.customer))));
    section.querySelector("button.none").addEventListener("click", () => decide(section, null));
    section.querySelector("button.skip").addEventListener("click", (event) => {
      event.stopPropagation();
      skip(section);
    });
    const input = section.querySelector("input.search");
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => search(section, input), 200);
    });
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, .confirm") || event.ctrlKey || event.metaKey ||
        event.altKey) {
      return;
    }
    if (current < 0) return;
    const section = folders[current];
    if (event.key >= "1" && event.key <= "3") pick(section, Number(event.key) - 1);
    else if (event.key === "n") decide(section, null);
    else if (event.key === "s") skip(section);
    else if (event.key === "j") select(current + 1);
    else if (event.key === "k") select(current - 1);
    else return;
    event.preventDefault();
  });

  const first = nextOpen(-1);
  select(first >= 0 ? first : 0);
})();
