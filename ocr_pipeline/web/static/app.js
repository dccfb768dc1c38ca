// The web page of `ocr-pipeline serve`: upload scans, follow their jobs, look at the results.
// Plain JavaScript, no build step, no network access beyond this server's API (/v1, docs/api.md).
"use strict";

(() => {
  const TOKEN_KEY = "ocr-pipeline.token";
  const JOBS_KEY = "ocr-pipeline.jobs";
  const POLL_FIRST_MS = 500;
  const POLL_MAX_MS = 2000;
  const POLL_HIDDEN_MS = 5000; // while the tab is in the background
  const POLL_OFFLINE_MAX_MS = 10000; // after network errors
  const UPLOADS_AT_ONCE = 2;
  const BUSY_RETRIES = 8; // 429 / 503 with Retry-After, per upload
  const KEPT_JOBS = 100; // jobs remembered in this tab (session storage)
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HAN = /[\u3400-\u9fff\uf900-\ufaff\u{20000}-\u{2fa1f}]/u;
  const CONFIDENCE = [
    { min: 0.9, cls: "conf-high", label: "high" },
    { min: 0.7, cls: "conf-mid", label: "medium" },
    { min: -Infinity, cls: "conf-low", label: "low" },
  ];
  const STATUS_LABELS = {
    pending: "Waiting to upload",
    uploading: "Uploading…",
    waiting: "Server busy",
    checking: "Checking…",
    queued: "Queued",
    processing: "Reading…",
    done: "Done",
    failed: "Failed",
  };
  const OUTCOME_LABELS = { partial: "Partly read", duplicate: "Done (seen before)" };

  const $ = (id) => document.getElementById(id);
  const ui = {
    serverInfo: $("server-info"),
    changeToken: $("change-token"),
    banner: $("banner"),
    dropZone: $("drop-zone"),
    chooseFiles: $("choose-files"),
    fileInput: $("file-input"),
    limits: $("limits"),
    jobList: $("job-list"),
    jobsEmpty: $("jobs-empty"),
    clearFinished: $("clear-finished"),
    announcer: $("announcer"),
    resultView: $("result-view"),
    resultTitle: $("result-title"),
    resultEmpty: $("result-empty"),
    resultMessage: $("result-message"),
    resultBody: $("result-body"),
    downloads: $("downloads"),
    downloadJson: $("download-json"),
    downloadTxt: $("download-txt"),
    pagePrev: $("page-prev"),
    pageNext: $("page-next"),
    pageIndicator: $("page-indicator"),
    pageNotes: $("page-notes"),
    pageFrame: $("page-frame"),
    pageImage: $("page-image"),
    overlay: $("page-overlay"),
    pageCaption: $("page-caption"),
    textLines: $("text-lines"),
    counts: { "conf-high": $("count-high"), "conf-mid": $("count-mid"), "conf-low": $("count-low") },
    tokenDialog: $("token-dialog"),
    tokenForm: $("token-form"),
    tokenReason: $("token-reason"),
    tokenInput: $("token-input"),
    tokenError: $("token-error"),
    tokenCancel: $("token-cancel"),
  };

  const state = {
    info: null,
    jobs: [], // newest first
    nextKey: 1,
    uploadQueue: [],
    uploading: 0,
    view: null, // the result on show
    tokenAsk: null, // {promise, resolve} while the token dialog is open
    memoryToken: null, // when session storage is unavailable
  };

  // ---------------------------------------------------------------- small helpers

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function setLang(node, text) {
    if (HAN.test(text || "")) node.lang = "zh";
    else node.removeAttribute("lang");
  }

  function formatBytes(n) {
    if (!Number.isFinite(n)) return "";
    const units = ["bytes", "KB", "MB", "GB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }

  function confidenceOf(value) {
    const c = Number.isFinite(value) ? value : 0;
    return CONFIDENCE.find((level) => c >= level.min);
  }

  function stemOf(name) {
    const base = String(name || "result").split(/[\\/]/).pop();
    const dot = base.lastIndexOf(".");
    return dot > 0 ? base.slice(0, dot) : base;
  }

  function announce(text) {
    // Re-set so a repeated message is read again.
    ui.announcer.textContent = "";
    setTimeout(() => {
      ui.announcer.textContent = text;
    }, 50);
  }

  function showBanner(text, action) {
    ui.banner.replaceChildren(el("span", {}, text));
    if (action) {
      const button = el("button", { type: "button", class: "button secondary" }, action.label);
      button.addEventListener("click", action.run);
      ui.banner.append(button);
    }
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    ui.banner.replaceChildren();
  }

  // ---------------------------------------------------------------- token

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || state.memoryToken;
    } catch {
      return state.memoryToken;
    }
  }

  function setToken(token) {
    state.memoryToken = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage refused (private mode): the token lives in memory for this page only.
    }
  }

  /**
   * Show the token form (once, however many requests wait for it); resolves with the token.
   * ``optional``: the user may cancel (changing a token that works); else requests wait on it.
   */
  function askToken(reason, optional = false) {
    ui.tokenReason.textContent = reason;
    if (state.tokenAsk) {
      if (!optional) state.tokenAsk.optional = false;
      ui.tokenCancel.hidden = !state.tokenAsk.optional;
      return state.tokenAsk.promise;
    }
    let resolve;
    const promise = new Promise((r) => {
      resolve = r;
    });
    state.tokenAsk = { promise, resolve, optional };
    ui.tokenCancel.hidden = !optional;
    ui.tokenError.hidden = true;
    ui.tokenInput.value = "";
    if (!ui.tokenDialog.open) ui.tokenDialog.showModal();
    ui.tokenInput.focus();
    return promise;
  }

  async function submitToken(event) {
    event.preventDefault();
    const token = ui.tokenInput.value.trim();
    if (!token) {
      showTokenError("Enter the token you were given.");
      return;
    }
    // GET /v1/auth: 200 when the token is accepted, 401 when it is not.
    let response;
    try {
      response = await fetch(apiUrl("v1/auth"), {
        headers: { Authorization: `Bearer ${token}` },
      });
    } catch {
      showTokenError("The server cannot be reached; try again.");
      return;
    }
    if (response.status === 401) {
      showTokenError("The server did not accept this token.");
      ui.tokenInput.select();
      return;
    }
    setToken(token);
    ui.tokenDialog.close();
    const ask = state.tokenAsk;
    state.tokenAsk = null;
    if (ask) ask.resolve(token);
  }

  function cancelToken() {
    const ask = state.tokenAsk;
    if (!ask || !ask.optional) return;
    state.tokenAsk = null;
    ui.tokenDialog.close();
    ask.resolve(getToken());
  }

  function showTokenError(text) {
    ui.tokenError.textContent = text;
    ui.tokenError.hidden = false;
  }

  // ---------------------------------------------------------------- API

  function apiUrl(path) {
    return new URL(path, document.baseURI).toString();
  }

  function retryAfterOf(response) {
    const value = response.headers.get("Retry-After");
    if (!value) return null;
    const seconds = Number(value);
    if (Number.isFinite(seconds)) return Math.max(1, seconds);
    const when = Date.parse(value);
    return Number.isFinite(when) ? Math.max(1, Math.ceil((when - Date.now()) / 1000)) : null;
  }

  async function detailOf(response) {
    try {
      const body = await response.clone().json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || String(d)).join("; ");
    } catch {
      // not JSON
    }
    return `${response.status} ${response.statusText}`.trim();
  }

  /** fetch with the token; on 401 asks for a token and tries again. Throws ApiError. */
  async function api(path, options = {}) {
    for (;;) {
      // The token form is open and there is no token yet: wait for it rather than earn a 401.
      if (!getToken() && state.tokenAsk && !state.tokenAsk.optional) await state.tokenAsk.promise;
      const headers = new Headers(options.headers || {});
      const token = getToken();
      if (token) headers.set("Authorization", `Bearer ${token}`);
      let response;
      try {
        response = await fetch(apiUrl(path), { ...options, headers });
      } catch (error) {
        throw new ApiError(0, `the server cannot be reached (${error.message})`, null);
      }
      if (response.status === 401) {
        if (token) setToken(null);
        ui.changeToken.hidden = false;
        await askToken(
          token
            ? "The server did not accept the token (it may have been changed). Enter a valid one."
            : "This server needs an API token.",
        );
        continue;
      }
      if (!response.ok) {
        throw new ApiError(response.status, await detailOf(response), retryAfterOf(response));
      }
      return response;
    }
  }

  // ---------------------------------------------------------------- server info

  async function loadInfo() {
    let info;
    try {
      const response = await fetch(apiUrl("v1/info"));
      if (!response.ok) throw new Error(await detailOf(response));
      info = await response.json();
    } catch (error) {
      ui.serverInfo.textContent = "Not connected";
      showBanner(`The server cannot be reached: ${error.message}.`, {
        label: "Try again",
        run: () => {
          hideBanner();
          loadInfo();
        },
      });
      return;
    }
    hideBanner();
    state.info = info;
    const parts = [`Server ${info.version}`];
    if (info.max_bytes) parts.push(`up to ${formatBytes(info.max_bytes)} per file`);
    if (info.auth_required) parts.push("token required");
    ui.serverInfo.textContent = parts.join(" · ");
    const suffixes = Array.isArray(info.supported_suffixes) ? info.supported_suffixes : [];
    if (suffixes.length) {
      ui.fileInput.accept = suffixes.join(",");
      ui.limits.textContent =
        `Accepted: ${suffixes.join(" ")}` +
        (info.max_bytes ? `, up to ${formatBytes(info.max_bytes)} each.` : ".");
    }
    ui.changeToken.hidden = !info.auth_required;
    if (info.auth_required && !getToken()) await askToken("This server needs an API token.");
    restoreJobs();
  }

  // ---------------------------------------------------------------- jobs

  function newJob(name) {
    const job = {
      key: `job-${state.nextKey++}`,
      id: null,
      name,
      file: null,
      status: "pending",
      outcome: null,
      message: "", // error or note shown under the name
      data: null, // the last job JSON from the server
      pollDelay: POLL_FIRST_MS,
      timer: null,
      row: null,
    };
    state.jobs.unshift(job);
    job.row = buildRow(job);
    ui.jobList.prepend(job.row.li);
    renderJob(job);
    return job;
  }

  function buildRow(job) {
    const name = el("span", { class: "job-name" }, job.name);
    setLang(name, job.name);
    const open = el("button", { type: "button", class: "job-open", "data-testid": "job-open" }, name);
    open.addEventListener("click", () => openJob(job));
    const status = el("span", { class: "badge", "data-testid": "job-status" });
    const meta = el("span", { class: "job-meta hint", "data-testid": "job-meta" });
    const message = el("p", { class: "job-message", "data-testid": "job-error" });
    const li = el(
      "li",
      { class: "job-row", "data-testid": "job-row" },
      el("div", { class: "job-line" }, open, status),
      meta,
      message,
    );
    // The whole row of a done job opens it too (the button is the keyboard's way in).
    li.addEventListener("click", (event) => {
      if (!event.target.closest("button") && !window.getSelection().toString()) openJob(job);
    });
    return { li, open, status, meta, message };
  }

  function isFinished(job) {
    return job.status === "done" || job.status === "failed";
  }

  function statusLabel(job) {
    if (job.status === "done" && OUTCOME_LABELS[job.outcome]) return OUTCOME_LABELS[job.outcome];
    return STATUS_LABELS[job.status] || job.status;
  }

  function renderJob(job) {
    const { li, open, status, meta, message } = job.row;
    li.dataset.status = job.status;
    if (job.id) li.dataset.jobId = job.id;
    if (job.outcome) li.dataset.outcome = job.outcome;
    else delete li.dataset.outcome;
    const label = statusLabel(job);
    status.textContent = label;
    status.className = `badge status-${job.status}${job.outcome === "partial" ? " status-partial" : ""}`;
    const canOpen = job.status === "done";
    open.disabled = !canOpen;
    open.title = canOpen ? "Show the result" : "";
    open.setAttribute("aria-label", `${job.name}: ${label}${canOpen ? ", show the result" : ""}`);
    meta.textContent = jobMeta(job);
    message.textContent = job.message;
    message.hidden = !job.message;
    message.classList.toggle("error", job.status === "failed");
    li.classList.toggle("selected", Boolean(state.view && state.view.job === job));
    ui.jobsEmpty.hidden = state.jobs.length > 0;
    ui.clearFinished.hidden = !state.jobs.some(isFinished);
  }

  function jobMeta(job) {
    const data = job.data;
    if (!data) return job.file ? formatBytes(job.file.size) : "";
    const submitted = Date.parse(data.submitted_at);
    const finished = Date.parse(data.finished_at);
    const parts = [];
    if (Number.isFinite(submitted)) {
      parts.push(new Date(submitted).toLocaleTimeString());
      if (Number.isFinite(finished) && finished >= submitted) {
        parts.push(`took ${((finished - submitted) / 1000).toFixed(1)} s`);
      }
    }
    return parts.join(" · ");
  }

  function setStatus(job, status, message = "") {
    const changed = job.status !== status;
    job.status = status;
    job.message = message;
    renderJob(job);
    if (changed && status !== "checking") {
      announce(`${job.name}: ${statusLabel(job)}${message ? `. ${message}` : ""}`);
    }
  }

  function errorText(error) {
    if (!error) return "";
    if (typeof error === "string") return error;
    const text = error.message || error.detail || "";
    const pages = Array.isArray(error.failed_pages) && error.failed_pages.length
      ? ` (pages ${error.failed_pages.join(", ")})`
      : "";
    return text ? `${text}${pages}` : (error.type || error.error_type || "unknown error") + pages;
  }

  function applyJob(job, data) {
    const before = `${job.status}/${job.outcome}`;
    job.data = data;
    job.id = data.job_id || job.id;
    job.outcome = data.outcome || null;
    job.status = STATUS_LABELS[data.status] ? data.status : "processing";
    if (job.status === "failed") job.message = errorText(data.error) || "The file could not be read.";
    else if (job.outcome === "partial") job.message = `Some pages could not be read: ${errorText(data.error)}`;
    else job.message = "";
    renderJob(job);
    if (before !== `${job.status}/${job.outcome}`) {
      announce(`${job.name}: ${statusLabel(job)}${job.status === "failed" ? `. ${job.message}` : ""}`);
      if (job.status === "done" && !state.view) openJob(job);
    }
  }

  function addFiles(files) {
    const list = Array.from(files || []);
    for (const file of list) {
      const job = newJob(file.name || "upload");
      job.file = file;
      const max = state.info && state.info.max_bytes;
      if (max && file.size > max) {
        setStatus(job, "failed", `Too large: ${formatBytes(file.size)}; the server takes up to ${formatBytes(max)}.`);
        continue;
      }
      renderJob(job);
      state.uploadQueue.push(job);
    }
    pumpUploads();
  }

  function pumpUploads() {
    while (state.uploading < UPLOADS_AT_ONCE && state.uploadQueue.length) {
      const job = state.uploadQueue.shift();
      state.uploading += 1;
      upload(job).finally(() => {
        state.uploading -= 1;
        pumpUploads();
      });
    }
  }

  async function upload(job) {
    for (let attempt = 0; ; attempt += 1) {
      setStatus(job, "uploading");
      const form = new FormData();
      form.append("file", job.file, job.file.name || "upload");
      try {
        const response = await api("v1/jobs", { method: "POST", body: form });
        const data = await response.json();
        job.file = null;
        applyJob(job, data);
        saveJobs();
        schedulePoll(job, POLL_FIRST_MS);
        return;
      } catch (error) {
        const busy = error.status === 429 || error.status === 503;
        if (busy && attempt < BUSY_RETRIES) {
          const seconds = error.retryAfter || 5;
          setStatus(job, "waiting", `${error.message} Trying again in ${seconds} s.`);
          await delay(seconds * 1000);
          continue;
        }
        // 400, 413, 415: the server's own words say what is wrong and what to do.
        const refused = [400, 413, 415].includes(error.status);
        const text = refused
          ? error.message.charAt(0).toUpperCase() + error.message.slice(1)
          : `Upload failed: ${error.message}`;
        job.file = null;
        setStatus(job, "failed", text);
        return;
      }
    }
  }

  function schedulePoll(job, ms) {
    clearTimeout(job.timer);
    job.timer = setTimeout(() => poll(job), document.hidden ? Math.max(ms, POLL_HIDDEN_MS) : ms);
  }

  async function poll(job) {
    if (!state.jobs.includes(job)) return;
    try {
      const response = await api((job.data && job.data.status_url) || `v1/jobs/${job.id}`);
      applyJob(job, await response.json());
    } catch (error) {
      if (error.status === 404) {
        setStatus(job, "failed", "The server no longer knows this job.");
        saveJobs();
        return;
      }
      job.pollDelay = Math.min(job.pollDelay * 2, POLL_OFFLINE_MAX_MS);
      job.message = `Cannot get the status (${error.message}); trying again.`;
      renderJob(job);
      schedulePoll(job, error.retryAfter ? error.retryAfter * 1000 : job.pollDelay);
      return;
    }
    if (isFinished(job)) {
      saveJobs();
      return;
    }
    job.pollDelay = Math.min(Math.round(job.pollDelay * 1.5), POLL_MAX_MS);
    schedulePoll(job, job.pollDelay);
  }

  function saveJobs() {
    const kept = state.jobs
      .filter((job) => job.id)
      .slice(0, KEPT_JOBS)
      .map((job) => ({ id: job.id, name: job.name }));
    try {
      sessionStorage.setItem(JOBS_KEY, JSON.stringify(kept));
    } catch {
      // not kept across reloads then
    }
  }

  function restoreJobs() {
    let kept = [];
    try {
      kept = JSON.parse(sessionStorage.getItem(JOBS_KEY) || "[]");
    } catch {
      kept = [];
    }
    if (!Array.isArray(kept)) return;
    for (const item of kept.slice().reverse()) {
      if (!item || typeof item.id !== "string" || state.jobs.some((j) => j.id === item.id)) continue;
      const job = newJob(String(item.name || item.id));
      job.id = item.id;
      setStatus(job, "checking");
      schedulePoll(job, 0);
    }
  }

  function clearFinished() {
    const gone = state.jobs.filter(isFinished);
    state.jobs = state.jobs.filter((job) => !isFinished(job));
    for (const job of gone) {
      clearTimeout(job.timer);
      job.row.li.remove();
      if (state.view && state.view.job === job) closeView();
    }
    saveJobs();
    ui.jobsEmpty.hidden = state.jobs.length > 0;
    ui.clearFinished.hidden = true;
    ui.chooseFiles.focus();
  }

  // ---------------------------------------------------------------- result view

  function closeView() {
    const view = state.view;
    if (view) for (const url of view.images.values()) if (url) URL.revokeObjectURL(url);
    state.view = null;
    ui.resultBody.hidden = true;
    ui.downloads.hidden = true;
    ui.resultMessage.hidden = true;
    ui.resultEmpty.hidden = false;
    ui.resultTitle.textContent = "Result";
    ui.resultView.dataset.state = "empty";
    for (const job of state.jobs) renderJob(job);
  }

  function showResultMessage(text, isError = false) {
    ui.resultMessage.textContent = text;
    ui.resultMessage.classList.toggle("error", isError);
    ui.resultMessage.hidden = !text;
  }

  async function openJob(job) {
    if (job.status !== "done") return;
    if (state.view && state.view.job === job && ui.resultView.dataset.state === "ready") return;
    closeView();
    const view = { job, result: null, page: 0, selected: -1, images: new Map() };
    state.view = view;
    for (const j of state.jobs) renderJob(j);
    ui.resultEmpty.hidden = true;
    ui.resultTitle.textContent = job.name;
    setLang(ui.resultTitle, job.name);
    ui.resultView.dataset.state = "loading";
    ui.resultView.dataset.jobId = job.id;
    showResultMessage("Loading the result…");
    try {
      const response = await api(job.data.result_url || `v1/jobs/${job.id}/result`);
      view.result = await response.json();
    } catch (error) {
      if (state.view !== view) return;
      ui.resultView.dataset.state = "error";
      showResultMessage(`The result cannot be loaded: ${error.message}`, true);
      return;
    }
    if (state.view !== view) return;
    const pages = Array.isArray(view.result.pages) ? view.result.pages : [];
    if (!pages.length) {
      ui.resultView.dataset.state = "error";
      showResultMessage("The result has no pages.", true);
      return;
    }
    showResultMessage(
      view.result.outcome === "partial" ? "Some pages of this document could not be read." : "",
      view.result.outcome === "partial",
    );
    setupDownloads(job);
    ui.resultBody.hidden = false;
    await showPage(0);
    if (window.matchMedia("(max-width: 60rem)").matches) {
      ui.resultView.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  }

  function setupDownloads(job) {
    const outputs = (job.data && job.data.outputs) || {};
    const links = [
      [ui.downloadJson, outputs.json || job.data.result_url || `v1/jobs/${job.id}/result`, ".json"],
      [ui.downloadTxt, outputs.txt, ".txt"],
    ];
    for (const [link, url, suffix] of links) {
      link.hidden = !url;
      if (!url) continue;
      link.href = apiUrl(url);
      link.download = stemOf(job.name) + suffix;
    }
    ui.downloads.hidden = false;
  }

  async function download(event) {
    event.preventDefault();
    const link = event.currentTarget;
    const original = link.textContent;
    link.setAttribute("aria-busy", "true");
    try {
      const response = await api(link.href);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const save = el("a", { href: url, download: link.download, hidden: "" });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      showResultMessage(`The download failed: ${error.message}`, true);
    } finally {
      link.removeAttribute("aria-busy");
      link.textContent = original;
    }
  }

  async function showPage(index) {
    const view = state.view;
    const pages = view.result.pages;
    const page = pages[index];
    view.page = index;
    view.selected = -1;
    ui.resultView.dataset.state = "loading";
    ui.resultView.dataset.page = String(index);
    ui.pageIndicator.textContent = `Page ${index + 1} of ${pages.length}`;
    ui.pagePrev.disabled = index === 0;
    ui.pageNext.disabled = index >= pages.length - 1;
    ui.pagePrev.hidden = ui.pageNext.hidden = pages.length < 2;
    renderNotes(page);
    renderBoxes(page);
    renderText(page);

    const width = Math.max(1, page.width || 1);
    const height = Math.max(1, page.height || 1);
    ui.pageFrame.style.setProperty("--page-ratio", `${width} / ${height}`);
    ui.pageFrame.style.setProperty("--page-width", `${width}px`);
    ui.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    ui.pageImage.alt = `Page ${index + 1} of ${view.job.name}`;
    ui.pageCaption.textContent = `${width} × ${height} px, ${page.lines.length} lines`;

    const url = await pageImage(view, index);
    if (state.view !== view || view.page !== index) return;
    if (url) {
      ui.pageImage.src = url;
      try {
        await ui.pageImage.decode();
      } catch {
        // shown anyway once loaded
      }
      if (state.view !== view || view.page !== index) return;
      ui.pageFrame.classList.remove("no-image");
      ui.pageImage.hidden = false;
    } else {
      ui.pageImage.removeAttribute("src");
      ui.pageImage.hidden = true;
      ui.pageFrame.classList.add("no-image");
      ui.pageCaption.textContent += ". " + view.imageErrors.get(index);
    }
    ui.resultView.dataset.state = "ready";
  }

  async function pageImage(view, index) {
    if (view.images.has(index)) return view.images.get(index);
    view.imageErrors = view.imageErrors || new Map();
    const base = (view.job.data && view.job.data.pages_url) || `v1/jobs/${view.job.id}/pages`;
    let url = null;
    try {
      const response = await api(`${base}/${index}`);
      url = URL.createObjectURL(await response.blob());
    } catch (error) {
      view.imageErrors.set(
        index,
        error.status === 404
          ? "The server no longer keeps the original, so only the boxes are drawn"
          : `The page image cannot be loaded (${error.message})`,
      );
      if (error.status !== 404) return null; // try again next time
    }
    if (state.view === view) view.images.set(index, url);
    else if (url) URL.revokeObjectURL(url);
    return url;
  }

  function renderNotes(page) {
    const notes = [];
    if (page.error) notes.push({ text: `This page could not be read: ${errorText(page.error)}`, error: true });
    for (const warning of page.warnings || []) notes.push({ text: warning, error: false });
    ui.pageNotes.replaceChildren(
      ...notes.map((note) => el("li", { class: note.error ? "error" : "" }, note.text)),
    );
    ui.pageNotes.hidden = notes.length === 0;
  }

  function renderBoxes(page) {
    const counts = { "conf-high": 0, "conf-mid": 0, "conf-low": 0 };
    const shapes = page.lines.map((line, i) => {
      const level = confidenceOf(line.confidence);
      counts[level.cls] += 1;
      const polygon = document.createElementNS(SVG_NS, "polygon");
      polygon.setAttribute("points", (line.box || []).map((p) => `${p[0]},${p[1]}`).join(" "));
      polygon.setAttribute("class", `line-box ${level.cls}`);
      polygon.setAttribute("data-testid", "line-box");
      polygon.setAttribute("data-index", String(i));
      polygon.setAttribute("data-confidence", level.label);
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = `${line.text} (${Math.round((line.confidence || 0) * 100)}%)`;
      polygon.append(title);
      return polygon;
    });
    ui.overlay.replaceChildren(...shapes);
    for (const [cls, count] of Object.entries(counts)) ui.counts[cls].textContent = `(${count})`;
  }

  function renderText(page) {
    if (!page.lines.length) {
      ui.textLines.replaceChildren(
        el("li", { class: "text-empty hint" }, page.error ? "Nothing read on this page." : "No text found on this page."),
      );
      return;
    }
    const items = page.lines.map((line, i) => {
      const level = confidenceOf(line.confidence);
      const text = el("span", { class: "line-text" }, line.text || "\u00a0");
      setLang(text, line.text);
      const percent = Math.round((line.confidence || 0) * 100);
      const confidence = el(
        "span",
        { class: `line-conf ${level.cls}`, title: `Confidence ${percent}%` },
        el("span", { class: "visually-hidden" }, "confidence "),
        `${percent}%`,
      );
      const button = el(
        "button",
        { type: "button", class: "line-button", tabindex: i === 0 ? "0" : "-1" },
        text,
        confidence,
      );
      if (line.raw_text && line.raw_text !== line.text) button.title = `Read as: ${line.raw_text}`;
      const startsBlock = i > 0 && line.block !== page.lines[i - 1].block;
      return el(
        "li",
        {
          class: `text-line${startsBlock ? " block-start" : ""}${line.vertical ? " vertical" : ""}`,
          "data-testid": "text-line",
          "data-index": String(i),
        },
        button,
      );
    });
    ui.textLines.replaceChildren(...items);
    ui.textLines.scrollTop = 0;
  }

  function lineItem(i) {
    return ui.textLines.querySelector(`li[data-index="${i}"]`);
  }

  function lineBox(i) {
    return ui.overlay.querySelector(`polygon[data-index="${i}"]`);
  }

  /** Highlight line ``i``: its box and its text; ``from`` is what was clicked (box or line). */
  function select(i, from) {
    const view = state.view;
    if (!view) return;
    const previous = view.selected;
    if (previous >= 0) {
      const oldBox = lineBox(previous);
      const oldItem = lineItem(previous);
      if (oldBox) {
        oldBox.classList.remove("selected");
        oldBox.removeAttribute("data-selected");
      }
      if (oldItem) {
        oldItem.classList.remove("selected");
        oldItem.removeAttribute("aria-current");
        oldItem.querySelector("button").tabIndex = -1;
      }
    }
    view.selected = i;
    const box = lineBox(i);
    const item = lineItem(i);
    ui.overlay.classList.add("has-selection");
    if (box) {
      box.classList.add("selected");
      box.setAttribute("data-selected", "true");
      ui.overlay.append(box); // drawn on top of its neighbours
    }
    if (item) {
      item.classList.add("selected");
      item.setAttribute("aria-current", "true");
      const button = item.querySelector("button");
      button.tabIndex = 0;
      if (from === "box") {
        item.scrollIntoView({ block: "nearest", behavior: "smooth" });
        button.focus({ preventScroll: true });
      } else if (from === "key") {
        button.focus();
      }
    }
    if (from !== "box" && box && window.matchMedia("(min-width: 75rem)").matches) {
      box.scrollIntoView({ block: "nearest", inline: "nearest", behavior: "smooth" });
    }
  }

  function onTextClick(event) {
    const item = event.target.closest("li.text-line");
    if (item) select(Number(item.dataset.index), "line");
  }

  function onTextKey(event) {
    const item = event.target.closest("li.text-line");
    if (!item) return;
    const count = ui.textLines.querySelectorAll("li.text-line").length;
    const i = Number(item.dataset.index);
    const next = {
      ArrowDown: Math.min(i + 1, count - 1),
      ArrowUp: Math.max(i - 1, 0),
      Home: 0,
      End: count - 1,
    }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    select(next, "key");
  }

  function onBoxClick(event) {
    const box = event.target.closest("polygon.line-box");
    if (box) select(Number(box.dataset.index), "box");
  }

  function hover(i, on) {
    const box = lineBox(i);
    const item = lineItem(i);
    if (box) box.classList.toggle("hover", on);
    if (item) item.classList.toggle("hover", on);
  }

  function onHover(event, on) {
    const target = event.target.closest("li.text-line, polygon.line-box");
    if (!target) return;
    const related = event.relatedTarget && event.relatedTarget.closest
      ? event.relatedTarget.closest("li.text-line, polygon.line-box")
      : null;
    if (related === target) return;
    hover(Number(target.dataset.index), on);
  }

  function turnPage(step) {
    const view = state.view;
    if (!view || !view.result) return;
    const next = view.page + step;
    if (next < 0 || next >= view.result.pages.length) return;
    showPage(next);
  }

  // ---------------------------------------------------------------- drag and drop

  function hasFiles(event) {
    return Array.from((event.dataTransfer && event.dataTransfer.types) || []).includes("Files");
  }

  function droppedFiles(event) {
    const transfer = event.dataTransfer;
    const items = Array.from(transfer.items || []);
    if (!items.length) return Array.from(transfer.files || []);
    const files = [];
    let folders = 0;
    for (const item of items) {
      if (item.kind !== "file") continue;
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry && entry.isDirectory) {
        folders += 1;
        continue;
      }
      const file = item.getAsFile();
      if (file) files.push(file);
    }
    if (folders) announce("Folders are not uploaded; drop the files themselves.");
    return files;
  }

  function setupDrop() {
    let depth = 0;
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      ui.dropZone.classList.add("dragging");
    });
    window.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    window.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) ui.dropZone.classList.remove("dragging");
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault(); // never navigate away to the dropped file
      depth = 0;
      ui.dropZone.classList.remove("dragging");
      addFiles(droppedFiles(event));
    });
    document.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      if (files.length) addFiles(files);
    });
  }

  // ---------------------------------------------------------------- start

  function start() {
    ui.tokenForm.addEventListener("submit", submitToken);
    ui.tokenDialog.addEventListener("cancel", (event) => {
      event.preventDefault(); // Escape: only an optional ask may be dismissed
      cancelToken();
    });
    ui.tokenCancel.addEventListener("click", cancelToken);
    ui.changeToken.addEventListener("click", () => {
      askToken("Enter the API token to use from now on.", true);
    });
    ui.chooseFiles.addEventListener("click", () => ui.fileInput.click());
    ui.fileInput.addEventListener("change", () => {
      addFiles(ui.fileInput.files);
      ui.fileInput.value = "";
    });
    ui.clearFinished.addEventListener("click", clearFinished);
    ui.downloadJson.addEventListener("click", download);
    ui.downloadTxt.addEventListener("click", download);
    ui.pagePrev.addEventListener("click", () => turnPage(-1));
    ui.pageNext.addEventListener("click", () => turnPage(1));
    ui.textLines.addEventListener("click", onTextClick);
    ui.textLines.addEventListener("keydown", onTextKey);
    ui.textLines.addEventListener("mouseover", (event) => onHover(event, true));
    ui.textLines.addEventListener("mouseout", (event) => onHover(event, false));
    ui.overlay.addEventListener("click", onBoxClick);
    ui.overlay.addEventListener("mouseover", (event) => onHover(event, true));
    ui.overlay.addEventListener("mouseout", (event) => onHover(event, false));
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) return;
      for (const job of state.jobs) if (job.id && !isFinished(job)) schedulePoll(job, 0);
    });
    setupDrop();
    loadInfo();
  }

  start();
})();
