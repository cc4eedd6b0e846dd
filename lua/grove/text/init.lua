-- grove.text: the word-level tokenizer and the small transformer text
-- encoder whose features condition the diffusion model (docs/text.md).
return function(grove)
  local text = {}
  grove.text = text
  text.Tokenizer = require "grove.text.tokenizer"(grove)
  text.Encoder = require "grove.text.encoder"(grove)

  -- The repository root, found from this file's own path
  -- (<root>/lua/grove/text/init.lua), so data/ resolves from any cwd.
  local function repo_root()
    local src = debug.getinfo(1, "S").source
    if src:sub(1, 1) ~= "@" then return nil end
    local root = src:sub(2):match("^(.-)lua/grove/text/init%.lua$")
    if root == "" then root = "./" end
    return root
  end
  text.repo_root = repo_root

  -- The tokenizer of the shapes captions (data/shapes/vocab.txt), or of the
  -- vocabulary file at path. opts as Tokenizer.load's (max_len, default 16).
  function text.shapes_tokenizer(path, opts)
    if type(path) == "table" then path, opts = nil, path end
    if not path then
      local root = repo_root()
      if not root then error("shapes_tokenizer: cannot locate the repository from this file; pass the vocabulary path", 2) end
      path = root .. "data/shapes/vocab.txt"
    end
    return text.Tokenizer.load(path, opts)
  end

  return text
end
