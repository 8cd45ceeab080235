-- Neovim 0.7 headless: start hrm lsp as the documented configuration does (start_client + buf_attach_client),
-- ask for a completion, run the "add docstring" code action, write what came back as JSON, quit.
local out = {}
local ws = vim.env.HRM_WS
local id = vim.lsp.start_client({
  name = "hrm",
  cmd = { vim.env.HRM_PYTHON, "-m", "lsp", "--model", vim.env.HRM_SPEC, "--log-file", "-" },
  root_dir = ws,
})
vim.cmd("edit " .. ws .. "/calc.py")
vim.lsp.buf_attach_client(0, id)
out.initialized = vim.wait(60000, function()
  local c = vim.lsp.get_client_by_id(id)
  return c ~= nil and c.server_capabilities ~= nil and next(c.server_capabilities) ~= nil
end, 100)
local uri = vim.uri_from_bufnr(0)
local res = vim.lsp.buf_request_sync(0, "textDocument/completion",
  { textDocument = { uri = uri }, position = { line = 1, character = 7 } }, 60000)
out.completion = res and res[id] and res[id].result or vim.NIL
local actions = vim.lsp.buf_request_sync(0, "textDocument/codeAction",
  { textDocument = { uri = uri }, range = { start = { line = 0, character = 0 }, ["end"] = { line = 0, character = 0 } },
    context = { diagnostics = {} } }, 60000)
out.actions = actions and actions[id] and actions[id].result or vim.NIL
local doc = nil
for _, a in ipairs(out.actions ~= vim.NIL and out.actions or {}) do
  if a.title == "HRM: add docstring" then doc = a end
end
if doc then
  local resolved = vim.lsp.buf_request_sync(0, "codeAction/resolve", doc, 60000)
  local edit = resolved and resolved[id] and resolved[id].result and resolved[id].result.edit
  if edit then
    vim.lsp.util.apply_workspace_edit(edit, "utf-16")
    out.text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  end
end
local f = io.open(vim.env.HRM_OUT, "w")
f:write(vim.fn.json_encode(out))
f:close()
vim.lsp.stop_client(id)
vim.cmd("qa!")
