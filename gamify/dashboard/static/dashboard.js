// gamify dashboard: the pages' one script. No framework, no build step, nothing from elsewhere.
//
// The API key is kept in sessionStorage (this tab only, gone when it closes), never in a
// cookie, and sent only as `Authorization: Bearer` on API calls and as `?token=` on the
// WebSocket. Everything shown is built with DOM nodes and textContent, never markup strings:
// campaign names, player ids and problem details are data, not HTML.
"use strict";

(() => {
  const KEY = "gamify.key";
  const TOP = 10;
  const REFRESH_MS = 15000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const page = document.body.dataset.page;

  // ---------------------------------------------------------------------------------------
  // Small helpers.

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child);
    }
    return node;
  }

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  const number = new Intl.NumberFormat();
  const fmt = (value) => number.format(value);
  const when = (iso) => new Date(iso).toLocaleString(undefined, {
    dateStyle: "medium", timeStyle: "short",
  });

  function statusChip(status) {
    return el("span", { class: `status status-${status}`, text: status });
  }

  function notice(text, isError) {
    const box = $("notice");
    box.textContent = text || "";
    box.hidden = !text;
    box.classList.toggle("error", Boolean(isError));
  }

  function figure(name, value) {
    return el("div", { class: "figure", "data-figure": name },
      el("div", { class: "value", text: value }), el("div", { class: "name", text: name }));
  }

  function table(headings, rows) {
    const head = el("tr", {}, ...headings.map(([text, cls]) => el("th", { class: cls, text })));
    return el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function cell(value, cls) {
    return el("td", { class: cls }, value instanceof Node ? value : String(value));
  }

  // ---------------------------------------------------------------------------------------
  // The API: bearer calls, RFC 9457 problems as errors.

  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.title = (body && body.title) || `HTTP ${status}`;
      this.errors = (body && Array.isArray(body.errors)) ? body.errors : [];
    }
  }

  function key() {
    return sessionStorage.getItem(KEY);
  }

  async function api(method, path, body, credential) {
    const headers = { Authorization: `Bearer ${credential || key()}` };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401 && !credential) {
        signOut("The API key was refused: sign in again.");
      }
      throw new Problem(response.status, data);
    }
    return data;
  }

  const campaignPath = (id) => `/v1/campaigns/${encodeURIComponent(id)}`;

  // Shows a failure inside a panel, in place of what it would have shown.
  function failed(container, error) {
    container.replaceChildren(el("p", { class: "empty", text: error.message }));
  }

  // ---------------------------------------------------------------------------------------
  // Signing in and out.

  async function signIn(candidate) {
    const me = await api("GET", "/v1/me", undefined, candidate);
    sessionStorage.setItem(KEY, candidate);
    return me;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    for (const stop of stoppers.splice(0)) stop();
    showSignedIn(null);
    notice(message || "", Boolean(message));
  }

  function showSignedIn(me) {
    $("signin").hidden = Boolean(me);
    $("who").hidden = !me;
    $("app").hidden = !me;
    $("signed-out").hidden = Boolean(me);
    $("tenant").textContent = me ? `${me.tenant} · ${me.scopes.join(", ")}` : "";
  }

  const stoppers = []; // what a sign-out must stop: sockets, timers

  async function start(me) {
    showSignedIn(me);
    notice("");
    const pages = { overview: showOverview, campaign: showCampaign, editor: showEditor };
    await (pages[page] || (() => undefined))();
  }

  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("key");
    const candidate = input.value.trim();
    if (!candidate) return;
    try {
      const me = await signIn(candidate);
      input.value = "";
      await start(me);
    } catch (error) {
      notice(`Not signed in: ${error.message}`, true);
    }
  });
  $("signout").addEventListener("click", () => signOut());

  // ---------------------------------------------------------------------------------------
  // The campaigns.

  async function showOverview() {
    const body = $("campaigns").tBodies[0];
    const campaigns = [];
    try {
      let after = "";
      do {
        const query = new URLSearchParams({ limit: "500", after });
        const found = await api("GET", `/v1/campaigns?${query}`);
        campaigns.push(...found.items);
        after = found.next;
      } while (after);
    } catch (error) {
      notice(`The campaigns could not be read: ${error.message}`, true);
      return;
    }
    body.replaceChildren(...campaigns.map((c) => el("tr", { "data-campaign": c.id },
      cell(el("a", { href: `/dashboard/campaigns/${encodeURIComponent(c.id)}` },
        el("strong", { text: c.name }), el("span", { class: "player-id", text: c.id }))),
      cell(statusChip(c.status)),
      cell(when(c.starts_at)),
      cell(when(c.ends_at)),
      cell((c.document.leaderboards || ["campaign"]).join(", ")),
    )));
    $("no-campaigns").hidden = campaigns.length > 0;
  }

  // ---------------------------------------------------------------------------------------
  // One campaign: summary, live leaderboard, funnel, participation, prize pool.

  async function showCampaign() {
    const id = document.body.dataset.campaign;
    let campaign;
    try {
      campaign = await api("GET", campaignPath(id));
    } catch (error) {
      notice(error.status === 404 ? `There is no campaign ${id}.` : error.message, true);
      return;
    }
    const names = new Map(campaign.document.badges.map((b) => [b.id, b.name]));
    $("campaign-name").textContent = campaign.name;
    document.title = `${campaign.name} · gamify`;
    $("campaign-meta").replaceChildren(
      statusChip(campaign.status), ` ${campaign.id} · ${when(campaign.starts_at)} to `,
      `${when(campaign.ends_at)} · ${campaign.document.timezone}`);

    watchLeaderboard(campaign, names);
    const refresh = () => Promise.all([
      showFunnel(campaign), showParticipation(id), showPayouts(campaign),
    ]);
    await refresh();
    const timer = setInterval(async () => {
      try {
        campaign = await api("GET", campaignPath(id)); // the status moves on the clock
      } catch (_) {
        return;
      }
      await refresh();
    }, REFRESH_MS);
    stoppers.push(() => clearInterval(timer));
  }

  function watchLeaderboard(campaign, names) {
    const select = $("board");
    const boards = campaign.document.leaderboards || ["campaign"];
    select.replaceChildren(...boards.map((b) => el("option", { value: b, text: b })));
    let socket = null;
    let board = boards[0];
    let stopped = false;
    let retry = 500;
    let asked = 0; // the latest badge read: an older answer is dropped

    const live = (state, text) => {
      $("live").className = `live ${state}`;
      $("live").textContent = text;
    };
    const subscription = (op) => JSON.stringify({
      op, topic: "leaderboard", campaign: campaign.id, board, top: TOP,
    });

    function connect() {
      const url = new URL("/v1/ws", window.location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("token", key());
      socket = new WebSocket(url);
      socket.addEventListener("open", () => {
        retry = 500;
        live("on", "live");
        socket.send(subscription("subscribe"));
      });
      socket.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "leaderboard" && message.board === board) {
          showBoard(message.entries);
        } else if (message.type === "error") {
          notice(`Leaderboard: ${message.detail}`, true);
        }
      });
      socket.addEventListener("close", (event) => {
        if (stopped) return;
        if (event.code === 4401) {
          live("off", `refused: ${event.reason}`);
          return;
        }
        live("off", "reconnecting");
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 10000);
      });
    }

    function showBoard(entries) {
      const rows = entries.map((entry) => el("tr", { "data-player": entry.player },
        cell(entry.rank, "rank"),
        cell(el("span", {}, entry.display_name || entry.player,
          entry.display_name ? el("span", { class: "player-id", text: entry.player }) : null)),
        cell(fmt(entry.score), "num"),
        el("td", { class: "badges" })));
      $("leaderboard").tBodies[0].replaceChildren(...rows);
      $("board-empty").hidden = entries.length > 0;
      if (entries.length) showBadges(entries.map((e) => e.player), rows);
    }

    async function showBadges(players, rows) {
      const mine = ++asked;
      const query = new URLSearchParams(players.map((p) => ["player", p]));
      let held;
      try {
        held = await api("GET", `${campaignPath(campaign.id)}/players/badges?${query}`);
      } catch (_) {
        return; // the board shows without badges
      }
      if (mine !== asked) return;
      held.players.forEach((player, i) => {
        rows[i].lastElementChild.replaceChildren(...player.badges.map((b) => el("span", {
          class: "chip",
          title: `${b.badge}, ${when(b.awarded_at)}`,
          text: names.get(b.badge) || b.badge,
        })));
      });
    }

    select.addEventListener("change", () => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(subscription("unsubscribe"));
      board = select.value;
      $("leaderboard").tBodies[0].replaceChildren();
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(subscription("subscribe"));
    });
    stoppers.push(() => {
      stopped = true;
      if (socket) socket.close(1000);
    });
    connect();
  }

  async function showFunnel(campaign) {
    const box = $("funnel");
    let funnel;
    try {
      funnel = await api("GET", `${campaignPath(campaign.id)}/funnel`);
    } catch (error) {
      failed(box, error);
      return;
    }
    const badges = [...funnel.badges].sort((a, b) => b.holders - a.holders);
    const widest = Math.max(funnel.participants, ...badges.map((b) => b.holders), 1);
    // The sparklines span the campaign so far: from its start to now, or to its end.
    const first = Date.parse(campaign.starts_at);
    const span = Math.max(Math.min(Date.now(), Date.parse(campaign.ends_at)) - first, 1);
    const row = (label, count, spark, attributes) => el("div", { class: "bar-row", ...attributes },
      el("span", { class: "label", title: label, text: label }),
      el("div", { class: "bar-track" }, bar(count / widest)),
      el("span", { class: "count", text: fmt(count) }),
      spark || el("span"));
    box.replaceChildren(
      row("Taking part", funnel.participants),
      ...badges.map((b) => row(
        b.name, b.holders, sparkline(b, first, span), { "data-badge": b.badge })));
  }

  function bar(share) {
    const node = el("div", { class: "bar" });
    node.style.width = `${(100 * Math.min(Math.max(share, 0), 1)).toFixed(2)}%`;
    return node;
  }

  // Holders of one badge over the days of every award: a step line, 0 before its first.
  function sparkline(badge, first, span) {
    const width = 100;
    const height = 20;
    const top = Math.max(badge.holders, 1);
    const x = (day) => Math.min(Math.max((Date.parse(day) - first) / span, 0), 1) * width;
    const y = (holders) => height - 1 - (holders / top) * (height - 2);
    const points = [`0,${y(0)}`];
    for (const d of badge.days) {
      const at = x(d.day).toFixed(1);
      const before = y(d.holders - d.awarded).toFixed(1);
      points.push(`${at},${before}`, `${at},${y(d.holders).toFixed(1)}`);
    }
    points.push(`${width},${y(badge.holders).toFixed(1)}`);
    const days = badge.days.map((d) => `${d.day}: ${d.holders}`).join("\n");
    const box = { class: "spark", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" };
    return svg("svg", box,
      svg("title", {}, days || "not awarded yet"), svg("polyline", { points: points.join(" ") }));
  }

  async function showParticipation(id) {
    const box = $("participation");
    let found;
    try {
      found = await api("GET", `${campaignPath(id)}/participation?days=30`);
    } catch (error) {
      failed(box, error);
      return;
    }
    if (!found.days.length) {
      box.replaceChildren(el("p", { class: "empty", text: "The campaign has not started." }));
      return;
    }
    box.replaceChildren(dayChart(found.days));
  }

  // Active players per day as SVG bars, each with its figures as a tooltip.
  function dayChart(days) {
    const width = 1000;
    const height = 180;
    const bottom = 18;
    const most = Math.max(...days.map((d) => d.players), 1);
    const step = width / days.length;
    const bars = days.map((d, i) => {
      const tall = ((height - bottom - 14) * d.players) / most;
      return svg("rect", {
        class: "day", "data-day": d.day, x: (i * step + step * 0.1).toFixed(1),
        y: (height - bottom - tall).toFixed(1), width: (step * 0.8).toFixed(1),
        height: Math.max(tall, 0).toFixed(1),
      }, svg("title", {}, `${d.day}: ${fmt(d.players)} players, ${fmt(d.events)} events`));
    });
    const label = (x, anchor, text) => svg("text",
      { x, y: height - 4, "text-anchor": anchor }, text);
    return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Active players per day" },
      svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom }),
      svg("text", { x: 2, y: 10 }, `${fmt(most)} players`),
      ...bars,
      label(0, "start", days[0].day),
      label(width, "end", days[days.length - 1].day));
  }

  let payoutNote = ""; // what the last retry did, kept across refreshes

  async function showPayouts(campaign) {
    const box = $("payouts");
    const pool = campaign.document.prize_pool;
    if (!pool) {
      box.replaceChildren(el("p", { class: "empty", text: "This campaign has no prize pool." }));
      return;
    }
    const unit = pool.unit;
    const path = `${campaignPath(campaign.id)}/payouts`;
    try {
      if (campaign.status === "cancelled") {
        box.replaceChildren(el("p", { class: "empty", text: "Cancelled: no pool is paid." }));
      } else if (campaign.status === "settled") {
        const payouts = await api("GET", `${path}?limit=100`);
        box.replaceChildren(...settledPayouts(payouts, unit, campaign));
      } else {
        box.replaceChildren(...previewPayouts(await api("POST", `${path}/preview?limit=10`), unit));
      }
    } catch (error) {
      failed(box, error);
    }
  }

  function previewPayouts(preview, unit) {
    return [
      el("p", { class: "hint", text: "The split as it would be now (settlement freezes it)." }),
      el("div", { class: "figures" },
        figure(`pool (${unit})`, fmt(preview.amount)),
        figure("allocated", fmt(preview.allocated)),
        figure("unallocated", fmt(preview.unallocated)),
        figure("eligible players", fmt(preview.eligible))),
      table([["#", "rank"], ["Player"], [unit, "num"]], preview.items.map((item) => el("tr", {},
        cell(item.rank, "rank"), cell(item.player), cell(fmt(item.amount), "num")))),
    ];
  }

  function settledPayouts(payouts, unit, campaign) {
    const retry = el("button", { id: "retry", type: "button", text: "Retry failed credits" });
    retry.disabled = payouts.failed === 0;
    const said = el("span", { id: "retried", class: "hint", text: payoutNote });
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        const done = await api("POST", `${campaignPath(campaign.id)}/payouts/retry`);
        payoutNote = `${fmt(done.retried)} credits sent again.`;
        await showPayouts(campaign);
      } catch (error) {
        said.textContent = error.message;
        retry.disabled = false;
      }
    });
    return [
      el("div", { class: "figures" },
        figure(`pool (${unit})`, fmt(payouts.amount)),
        figure("allocated", fmt(payouts.allocated)),
        figure("delivered", fmt(payouts.delivered)),
        figure("failed", fmt(payouts.failed)),
        figure("eligible players", fmt(payouts.eligible))),
      el("div", { class: "actions" }, retry, said),
      table([["Player"], [unit, "num"], ["Status"], ["Attempts", "num"], ["Last error"]],
        payouts.items.map((item) => el("tr", { "data-player": item.player },
          cell(item.player), cell(fmt(item.amount), "num"), cell(statusChip(item.status)),
          cell(item.attempts, "num"), cell(item.last_error || "")))),
      payouts.next ? el("p", { class: "hint", text: "The first 100 credits." }) : null,
    ].filter(Boolean);
  }

  // ---------------------------------------------------------------------------------------
  // The rules editor: create, or simulate first.

  function showEditor() {
    $("create").onclick = () => submit(async (text) => {
      const created = await api("POST", "/v1/campaigns", text);
      window.location.assign(`/dashboard/campaigns/${encodeURIComponent(created.id)}`);
    });
    $("simulate").onclick = () => submit(async (text) => {
      const body = { campaign: JSON.parse(text) };
      const days = $("period").value;
      if (days) body.days = Number(days);
      $("simulation").hidden = false;
      $("simulation-result").replaceChildren(el("p", { class: "hint", text: "Simulating…" }));
      try {
        showSimulation(await api("POST", "/v1/campaigns/simulate", body), body.campaign);
      } catch (error) {
        $("simulation").hidden = true;
        throw error;
      }
    });
  }

  // Runs `action` with the editor's text once it parses as JSON; shows its problem if not.
  async function submit(action) {
    const text = $("rules").value;
    showProblem(null);
    try {
      JSON.parse(text);
    } catch (error) {
      showProblem({
        title: "The document is not JSON",
        errors: [{ field: "body", message: error.message }],
      });
      return;
    }
    const buttons = [$("create"), $("simulate")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await action(text);
    } catch (error) {
      showProblem(error instanceof Problem ? error : { title: error.message, errors: [] });
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function showProblem(problem) {
    $("problem").hidden = !problem;
    if (!problem) return;
    $("problem-title").textContent = problem.message || problem.title;
    $("errors").replaceChildren(...problem.errors.map((e) => el("li", { "data-field": e.field },
      el("code", { text: e.field }), `: ${e.message}`)));
  }

  function showSimulation(result, campaign) {
    const names = new Map(campaign.badges.map((badge) => [badge.id, badge.name]));
    const scores = result.scores;
    const most = Math.max(...result.badges.map((b) => b.players), 1);
    const parts = [
      el("p", {
        class: "hint",
        text: `Replayed over ${when(result.period.from)} to ${when(result.period.to)}; `
          + "nothing was written.",
      }),
      el("div", { class: "figures" },
        figure("events", fmt(result.events)),
        figure("players", fmt(result.players)),
        figure("ranked", fmt(scores.ranked)),
        figure("mean score", scores.mean),
        figure("median", scores.percentiles.p50),
        figure("p90", scores.percentiles.p90),
        figure("best", scores.max)),
      el("h3", { text: "Badges earned" }),
      el("div", { id: "simulated-badges" }, ...result.badges.map((b) => el("div",
        { class: "bar-row", "data-badge": b.badge },
        el("span", { class: "label", title: b.badge, text: b.name }),
        el("div", { class: "bar-track" }, bar(b.players / most)),
        el("span", { class: "count", text: fmt(b.players) }),
        el("span")))),
      el("h3", { text: "Top 10" }),
      table([["#", "rank"], ["Player"], ["Score", "num"], ["Badges"]],
        result.top.map((e) => el("tr", { "data-player": e.player },
          cell(e.rank, "rank"), cell(e.display_name || e.player), cell(fmt(e.score), "num"),
          cell(e.badges.map((badge) => names.get(badge) || badge).join(", "))))),
    ];
    if (result.payouts) {
      const p = result.payouts;
      parts.push(el("h3", { text: "Prize pool" }), el("div", { class: "figures" },
        figure(`pool (${p.unit})`, fmt(p.amount)),
        figure("allocated", fmt(p.allocated)),
        figure("eligible", fmt(p.eligible)),
        figure("credited", fmt(p.credited))));
    }
    $("simulation-result").replaceChildren(...parts);
  }

  // ---------------------------------------------------------------------------------------
  // On load: a key of this tab's session signs in again.

  (async () => {
    const stored = key();
    if (!stored) {
      showSignedIn(null);
      return;
    }
    try {
      await start(await signIn(stored));
    } catch (error) {
      signOut(error.status === 401 ? "The API key was refused: sign in again." : error.message);
    }
  })();
})();
